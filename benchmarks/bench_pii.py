"""PII redaction: the digit-run pre-scan against the plain IPv4/phone alternation, on real text.

``redact`` first asks whether a document can hold an address or a phone number at all. Since
a3cd6d2 that question starts with one character class (a run of 7+ digits and separators) and
runs the IPv4/phone alternation only from the first such run; before, the alternation scanned
every document. Both gates run here on the same documents, in one process, one after another
(then the pre-scan again, to show the noise), and must give the same output.

    python benchmarks/bench_pii.py --every 10      # every 10th real-en document (~17 MB)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

from gristmill.corpus import pii
from gristmill.corpus.pii import PIIConfig, redact

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def alternation_gate(text: str, cfg: PIIConfig) -> bool:
    """The gate before the pre-scan: the whole alternation over the whole document."""
    return (pii.ANY_CANDIDATE_RE.search(text) is not None
            or (cfg.ip and pii._may_hold_ipv6(text) and pii.IPV6_RE.search(text) is not None))


def timed(docs: list[str], cfg: PIIConfig) -> tuple[float, list[str]]:
    t = time.perf_counter()
    out = [redact(d, cfg)[0] for d in docs]
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA / "real-en.jsonl.gz")
    ap.add_argument("--every", type=int, default=10)
    a = ap.parse_args()
    with gzip.open(a.data, "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for i, line in enumerate(f) if i % a.every == 0]
    mb = sum(len(d.encode()) for d in docs) / 1e6
    cfg = PIIConfig()
    prescan = pii._has_candidate
    rows = []
    for name in ("pre-scan", "alternation", "pre-scan"):
        pii._has_candidate = prescan if name == "pre-scan" else alternation_gate
        seconds, out = timed(docs, cfg)
        rows.append((name, seconds, out))
    pii._has_candidate = prescan
    assert all(r[2] == rows[0][2] for r in rows), "the two gates redacted differently"
    print(f"{len(docs):,} documents, {mb:.1f} MB; load average {os.getloadavg()[0]:.2f}")
    print("| gate | seconds | MB/s |\n|---|---:|---:|")
    for name, seconds, _ in rows:
        print(f"| {name} | {seconds:.2f} | {mb / seconds:.1f} |")
    best = min(s for n, s, _ in rows if n == "pre-scan")
    print(f"alternation / pre-scan time: {rows[1][1] / best:.2f}x (same output)")


if __name__ == "__main__":
    main()
