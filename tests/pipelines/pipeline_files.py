"""Pipeline files the pipeline tests run on real stages, also used by the Slurm cluster tests:
the reduced demo pipeline (with the stage folders whose bytes must not depend on where it ran) and a
two-arm ablation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.demo import demo_docs

# The data stages' folders under the reduced pipeline's root: their bytes must not depend on where it ran.
DATA_STAGES = ("01-ingest", "03-dedup", "04-tokenizer", "05-shards")

REDUCED = """\
[pipeline]
root = "{root}"
inputs = ["{corpus}"]
stages = ["ingest", "dedup", "tokenizer", "shards", "train"]

[tokenizer]
vocab_size = 512

[shards]
val_fraction = 0.1

[train]
model = "tiny"
seq_len = 64
batch_tokens = 512
max_steps = 40

[train.data]
val_windows = 4

[train.checkpoint]
every = 10
keep = 2

[train.logging]
log_every = 10
val_every = 20

[train.parallel]
device = "cpu"
threads = 1

[cluster]
workers = 2
"""


def digests(root: Path, stages: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every output file of ``stages`` (manifests aside: they hold paths and times)."""
    out = {}
    for stage in stages:
        for f in sorted((root / stage).rglob("*")):
            if f.is_file() and f.name != "manifest.json":
                out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


ABLATE = """\
[pipeline]
root = "out"
inputs = ["corpus.jsonl"]
stages = ["ingest", "dedup", "tokenizer", "shards", "train"]

[ablate]
heldout = "heldout"
arms = {{ raw = ["ingest", "tokenizer", "shards", "train"], dedup = {dedup} }}

[tokenizer]
vocab_size = 300

[shards]
val_fraction = 0.1

[train]
model = "tiny"
seq_len = 32
batch_tokens = 128
max_steps = 6

[train.checkpoint]
every = 3
keep = 3

[train.logging]
log_every = 2
val_every = 3

[train.parallel]
device = "cpu"
threads = 1

[cluster]
workers = 1
"""
DEDUP = '["ingest", "dedup", "tokenizer", "shards", "train"]'


def write_ablation(tmp: Path, dedup: str = DEDUP) -> Path:
    """The ablation file (arms raw and ``dedup``) over 12 KJV documents plus three exact copies, and two
    held-out documents in ``tmp/heldout``."""
    docs = [d for d in demo_docs() if d["source"] == "kjv"]
    train, held = docs[:12], docs[12:14]
    with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as f:
        rows = [(d["id"], d["text"]) for d in train] + [(d["id"] + "-copy", d["text"]) for d in train[:3]]
        for doc_id, text in rows:  # three exact copies for dedup to remove
            f.write(json.dumps({"id": doc_id, "text": text[:1500]}) + "\n")
    (tmp / "heldout").mkdir()
    for i, d in enumerate(held):
        (tmp / "heldout" / f"{i}.txt").write_text(d["text"][:1000], encoding="utf-8")
    p = tmp / "ablate.toml"
    p.write_text(ABLATE.format(dedup=dedup), encoding="utf-8")
    return p
