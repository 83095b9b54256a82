"""Run by bench_path.py inside the peer venv: datatrove's steps of the data path, one per call.

    /tmp/peer-venv/bin/python benchmarks/peer_datatrove_path.py STEP SHARDS_DIR WORK WORKERS [TOKENIZER_JSON]

STEP is ``filter`` (JSONL reader -> Gopher repetition -> Gopher quality -> C4 -> FineWeb, the
FineWeb recipe's order, written as JSONL), ``minhash`` (its 4 stages: signatures, buckets,
clusters, filter; word 5-grams, 14 buckets x 8 hashes, as gristmill's defaults) or
``tokenize`` (DocumentTokenizer with the same tokenizer.json gristmill trained). Each step reads
what the one before wrote under WORK. Needs ``if __name__ == "__main__"`` (the executor forks).
"""

import os
import sys

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                      MinhashDedupSignature)
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def run(pipeline, tasks: int, workers: int, logs: str) -> None:
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                          skip_completed=False).run()


def main() -> None:
    step, shards, work, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tasks = max(workers, len([p for p in os.listdir(shards) if p.endswith(".jsonl")]))
    if step == "filter":
        run([JsonlReader(shards), GopherRepetitionFilter(), GopherQualityFilter(),
             C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(),
             JsonlWriter(f"{work}/filtered", compression=None)], tasks, workers, f"{work}/logs/filter")
    elif step == "minhash":
        cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8,
                            hash_config=HashConfig(precision=64, hash_fc="xxhash"))
        src = f"{work}/filtered"
        run([JsonlReader(src), MinhashDedupSignature(f"{work}/sigs", config=cfg)], tasks, workers,
            f"{work}/logs/m1")
        run([MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=cfg)], cfg.num_buckets, workers,
            f"{work}/logs/m2")
        run([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=cfg)], 1, 1, f"{work}/logs/m3")
        run([JsonlReader(src), MinhashDedupFilter(f"{work}/remove"), JsonlWriter(f"{work}/deduped", compression=None)],
            tasks, workers, f"{work}/logs/m4")
    elif step == "tokenize":
        run([JsonlReader(f"{work}/deduped"),
             DocumentTokenizer(output_folder=f"{work}/tokens", tokenizer_name_or_path=sys.argv[5],
                               eos_token="<|endoftext|>", shuffle_documents=False)],
            tasks, workers, f"{work}/logs/tokenize")
    else:
        sys.exit(f"unknown step {step!r}")


if __name__ == "__main__":
    main()
