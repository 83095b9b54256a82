"""Generation speed with and without the KV cache (CPU by default).

Greedy decoding of ``--new-tokens`` tokens after a ``--prompt-tokens`` prompt, once with the KV
cache (each step feeds one token) and once without (each step reruns the whole sequence). Both
must produce the same tokens; the script checks it. Weights are random unless ``--run`` points at
a trained run (speed does not depend on the weights' values, only on shapes).

    .venv/bin/python benchmarks/bench_generate.py --model mini --vocab 4096 --new-tokens 256
    .venv/bin/python benchmarks/bench_generate.py --run /tmp/demo/train --new-tokens 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from gristmill.train.generate import SamplingConfig, generate
from gristmill.train.model import GPT, ModelConfig


def build(args: argparse.Namespace) -> GPT:
    if args.run:
        from gristmill.train.run import load_run
        return load_run(args.run, device=args.device).model
    cfg = ModelConfig.named(args.model, vocab_size=args.vocab, max_seq_len=args.prompt_tokens + args.new_tokens)
    torch.manual_seed(0)
    return GPT(cfg).to(args.device).eval()


def measure(model: GPT, prompt: list[int], new_tokens: int, use_cache: bool, repeats: int) -> dict[str, float | list[int]]:
    cfg = SamplingConfig(temperature=0, max_new_tokens=new_tokens, stop_at_eos=False)
    generate(model, prompt, SamplingConfig(temperature=0, max_new_tokens=4, stop_at_eos=False),
             eos_id=None, use_cache=use_cache)  # warm-up (allocator, kernels)
    runs = [generate(model, prompt, cfg, eos_id=None, use_cache=use_cache) for _ in range(repeats)]
    return {"tokens_per_s": statistics.median(r.tokens_per_s for r in runs),
            "prompt_tokens_per_s": statistics.median(r.prompt_tokens_per_s for r in runs),
            "seconds": statistics.median(r.prompt_seconds + r.generate_seconds for r in runs),
            "tokens": runs[0].token_ids}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mini", choices=ModelConfig.names())
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--run", default=None, help="use a trained run directory instead of random weights")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args)
    cfg = model.config
    if args.prompt_tokens + args.new_tokens > cfg.max_seq_len:
        p.error(f"prompt + new tokens exceed the model's context {cfg.max_seq_len}")
    prompt = torch.randint(0, cfg.vocab_size, (args.prompt_tokens,), generator=torch.Generator().manual_seed(0)).tolist()
    started = time.perf_counter()
    cached = measure(model, prompt, args.new_tokens, True, args.repeats)
    plain = measure(model, prompt, args.new_tokens, False, args.repeats)
    assert cached["tokens"] == plain["tokens"], "KV cache changed the greedy tokens"
    report = {
        "model": args.run or args.model, "params": model.num_params(), "n_layer": cfg.n_layer, "d_model": cfg.d_model,
        "vocab": cfg.vocab_size, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
        "threads": args.threads, "device": args.device, "repeats": args.repeats,
        "kv_cache_tokens_per_s": round(cached["tokens_per_s"], 1),
        "no_cache_tokens_per_s": round(plain["tokens_per_s"], 1),
        "speedup": round(cached["tokens_per_s"] / plain["tokens_per_s"], 2),
        "prompt_tokens_per_s": round(cached["prompt_tokens_per_s"], 1),
        "identical_tokens": True, "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
