"""Run by bench_shards.py inside the peer venv: datatrove's DocumentTokenizer on the same Parquet.

    /tmp/peer-venv/bin/python benchmarks/peer_datatrove_tokenize.py DOCS_DIR TOKENIZER_JSON OUT WORKERS

Prints the wall-clock seconds of the pipeline run on its last line.
"""

import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizer

if __name__ == "__main__":
    docs, tok, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    n_parts = len([p for p in __import__("os").listdir(docs) if p.endswith(".parquet")])
    ex = LocalPipelineExecutor(
        pipeline=[ParquetReader(docs, glob_pattern="part-*.parquet", text_key="text", id_key="id"),
                  DocumentTokenizer(output_folder=out + "/tokens", tokenizer_name_or_path=tok,
                                    eos_token="<|endoftext|>", shuffle_documents=False)],
        tasks=max(workers, n_parts), workers=workers, logging_dir=out + "/logs")
    t = time.perf_counter()
    ex.run()
    print(time.perf_counter() - t)
