#!/usr/bin/env bash
# GPU check of `gristmill train`: the 124M ("small", GPT-2-small shape) model, bf16 autocast and
# torch.compile, a few hundred steps on the demo corpus that ships in the repo; prints tokens/s,
# MFU and peak memory. Needs a CUDA build of torch in $PYTHON. About 3-6 minutes on one H100/H200
# (compile ~1 min); uses every visible GPU through torchrun when there are several.
#
#   benchmarks/gpu_check.sh [WORK_DIR] [STEPS]        (defaults: /tmp/gristmill-gpu-check 300)
#   PYTHON=/path/to/python NGPUS=1 benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/gristmill-gpu-check}
STEPS=${2:-300}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch " + torch.__version__)'
NGPUS=${NGPUS:-$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')}
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name(0), "x", torch.cuda.device_count())'
mkdir -p "$WORK"

# Shards of the demo corpus with a 16k byte-level BPE. The manifest's vocab_size is padded to 50304
# (as nanoGPT pads GPT-2's 50257) so that "small" has exactly the GPT-2-small shape (~124M).
"$PYTHON" - "$WORK/shards" <<'PY'
import gzip, hashlib, json, sys
from importlib import resources
from pathlib import Path
import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
out = Path(sys.argv[1])
if (out / "manifest.json").is_file():
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
src = resources.files("gristmill") / "data" / "demo" / "demo-corpus.jsonl.gz"
with gzip.open(str(src), "rt", encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in f]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=16384, special_tokens=["<|endoftext|>"],
                        show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok.save(str(out / "tokenizer.json"))
eos = tok.token_to_id("<|endoftext|>")
docs = [e.ids + [eos] for e in tok.encode_batch(texts)]
schema = pa.schema([("input_ids", pa.list_(pa.uint16())), ("doc_id", pa.string())])
splits = {"train": [d for i, d in enumerate(docs) if i % 20], "val": [d for i, d in enumerate(docs) if i % 20 == 0]}
val_bytes = sum(len(t.encode()) for i, t in enumerate(texts) if i % 20 == 0)
shards, totals = [], {}
for split, rows in splits.items():
    name = f"{split}-00000.arrow"
    with pa.OSFile(str(out / name), "wb") as f, pa.ipc.new_stream(f, schema) as w:
        w.write_batch(pa.record_batch([pa.array(rows, pa.list_(pa.uint16())), pa.array([str(i) for i in range(len(rows))])], schema=schema))
    n = sum(map(len, rows))
    shards.append({"file": name, "split": split, "docs": len(rows), "tokens": n,
                   "bytes": (out / name).stat().st_size, "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()})
    totals[split] = {"docs": len(rows), "tokens": n, "bytes": val_bytes if split == "val" else None}
(out / "manifest.json").write_text(json.dumps({"format": "gristmill-shards", "format_version": 1,
    "vocab_size": 50304, "eos_id": eos, "dtype": "uint16", "shards": shards, "totals": totals,
    "tokenizer_sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest()}))
print(f"shards: {sum(s['tokens'] for s in shards):,} tokens")
PY

ARGS=(train --data "$WORK/shards" -o "$WORK/run" --model small --seq-len 1024 --batch-tokens 131072
      --micro-batch 16 --max-steps "$STEPS" --checkpoint-every 0 --device cuda --compile --force)
START=$(date +%s)
if [[ "$NGPUS" -gt 1 ]]; then
  "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NGPUS" -m gristmill -v "${ARGS[@]}"
else
  "$PYTHON" -m gristmill -v "${ARGS[@]}"
fi
echo "wall time: $(( $(date +%s) - START )) s"

# Steady state: skip the first 20 steps (compilation, allocator warm-up).
"$PYTHON" - "$WORK/run/metrics.jsonl" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in recs if "tokens_per_s" in r]
steady = steps[20:] or steps
tps = statistics.median(r["tokens_per_s"] for r in steady)
mfu = [r["mfu"] for r in steady if r.get("mfu") is not None]
val = [r for r in recs if "val_loss" in r]
mfu_text = f"{100 * statistics.median(mfu):.1f}%" if mfu else "unknown (set parallel.peak_flops)"
print(f"steps {len(steps)}  median tokens/s {tps:,.0f}  median MFU {mfu_text}")
print(f"peak memory {max(r['mem_gib'] for r in steps):.1f} GiB  loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}"
      + (f"  val loss {val[-1]['val_loss']:.3f}" if val else ""))
PY
