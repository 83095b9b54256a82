"""``gristmill generate``, ``gristmill inspect …`` and ``gristmill export …``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gristmill.clikit import config_option, echo_err, emit_json, load_config
from gristmill.errors import InputError

_run_arg = click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
_device_opt = click.option("--device", default="cpu", show_default=True,
                           help="cpu, cuda, cuda:1, mps, or auto (best available).")
_json_opt = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def _load(run_dir: Path, device: str):  # type: ignore[no-untyped-def]
    from gristmill.train.run import load_run  # torch-heavy imports only when a command runs
    return load_run(run_dir, device=device)


@click.command()
@_run_arg
@click.option("--prompt", default="", help="Text to continue (empty: start a new document).")
@click.option("--temperature", type=float, default=None, help="0 = greedy; higher = more varied. [default: 0.8]")
@click.option("--top-k", type=int, default=None, help="Sample among the k most probable tokens (0 = off). [default: 50]")
@click.option("--top-p", type=float, default=None,
              help="Sample among the most probable tokens holding this much probability (1 = off). [default: 0.95]")
@click.option("--max-new-tokens", type=int, default=None, help="Stop after this many tokens. [default: 200]")
@click.option("--seed", type=int, default=None, help="Same seed and options -> same text.")
@click.option("--num-samples", type=int, default=None, help="How many continuations. [default: 1]")
@click.option("--stream", is_flag=True, help="Print text as it is generated.")
@click.option("--no-kv-cache", is_flag=True, help="Recompute the whole sequence at every step (slow; for comparison).")
@_device_opt
@config_option
@_json_opt
def generate(run_dir: Path, prompt: str, temperature: float | None, top_k: int | None, top_p: float | None,
             max_new_tokens: int | None, seed: int | None, num_samples: int | None, stream: bool,
             no_kv_cache: bool, device: str, config_path: Path | None, as_json: bool) -> None:
    """Sample text from a trained run, with a KV cache, temperature, top-k and top-p.

    The text goes to stdout (prompt, then the continuation); speeds go to stderr: prompt
    tokens/s (one pass over the prompt) and generation tokens/s (one token per step).
    Options can also come from a TOML file's [generate] table.

    \b
    Example:
      gristmill generate runs/demo --prompt "To be, or not to be" --temperature 0.8 --seed 1
      gristmill generate runs/demo --prompt "And God said" --temperature 0 --stream
    """
    from gristmill.train.generate import SamplingConfig, generate_text

    config = load_config(SamplingConfig, config_path, "generate", {
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "max_new_tokens": max_new_tokens,
        "seed": seed, "num_samples": num_samples})
    run = _load(run_dir, device)
    out = sys.stderr if as_json else sys.stdout  # with --json, stdout holds only the JSON object
    current = {"sample": -1}

    def show(i: int, piece: str) -> None:
        if current["sample"] != i:
            _sample_header(i, config.num_samples)
            click.echo(prompt, nl=False, file=out)
            current["sample"] = i
        click.echo(piece, nl=False, file=out)
        out.flush()

    results = generate_text(run, prompt, config, use_cache=not no_kv_cache, stream=show if stream else None)
    for i, r in enumerate(results):
        if stream:
            if current["sample"] != i:  # nothing was streamed (immediate EOS)
                _sample_header(i, config.num_samples)
                click.echo(prompt, nl=False, file=out)
            click.echo("", file=out)
        elif not as_json:
            _sample_header(i, config.num_samples)
            click.echo(prompt + r.text, file=out)
        echo_err(f"[{r.finish_reason}] {len(r.token_ids)} new tokens · prompt {len(r.prompt_ids)} tokens at "
                 f"{r.prompt_tokens_per_s:,.0f} tok/s · generation {r.tokens_per_s:,.1f} tok/s"
                 f"{' (no KV cache)' if no_kv_cache else ''}")
    if as_json:
        emit_json({"run": str(run_dir), "prompt": prompt, "config": _cfg(config), "kv_cache": not no_kv_cache,
                   "samples": [r.to_dict() for r in results]})


def _sample_header(i: int, n: int) -> None:
    if n > 1:
        echo_err(f"──── sample {i + 1}/{n} ────")


def _cfg(config: Any) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__slots__}


@click.group()
def inspect() -> None:
    """Look inside a trained model: next-token probabilities, embeddings, attention."""


@inspect.command("next-token")
@_run_arg
@click.argument("text")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many candidates.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Also show the probabilities after dividing the logits by this.")
@_device_opt
@_json_opt
def next_token_cmd(run_dir: Path, text: str, top: int, temperature: float, device: str, as_json: bool) -> None:
    """The most probable next tokens after TEXT, with probabilities and the entropy.

    "p" is the model's own distribution; "p@T" the one sampling at --temperature draws from.
    Entropy (bits) is how uncertain the model is: 0 = sure; log2(vocab) = no idea.

    \b
    Example:
      gristmill inspect next-token runs/demo "And God said, Let there be" --top 5 --temperature 0.7
    """
    from gristmill.train.inspect import next_token, pad_cells, show_token

    result = next_token(_load(run_dir, device), text, top=top, temperature=temperature)
    if as_json:
        emit_json({"text": text, "context_tokens": result.context_tokens, "temperature": temperature,
                   "entropy_bits": result.entropy_bits, "entropy_bits_t": result.entropy_bits_t,
                   "candidates": [{"id": c.id, "token": c.token, "prob": c.prob, "prob_t": c.prob_t}
                                  for c in result.candidates]})
        return
    click.echo(f"{'rank':>4}  {'id':>6}  {'token':<20} {'p':>8} {f'p@{temperature:g}':>8}")
    for rank, c in enumerate(result.candidates, 1):
        click.echo(f"{rank:>4}  {c.id:>6}  {pad_cells(show_token(c.token), 20)} {c.prob:>8.4f} {c.prob_t:>8.4f}")
    echo_err(f"context {result.context_tokens} tokens · entropy {result.entropy_bits:.2f} bits "
             f"(at T={temperature:g}: {result.entropy_bits_t:.2f} bits)")


@inspect.command("embeddings")
@_run_arg
@click.option("--nearest", "word", metavar="WORD", default=None, help="Tokens closest to WORD (cosine).")
@click.option("--analogy", nargs=3, metavar="A B C", default=None, help="A is to B as C is to ? (B - A + C).")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="How many neighbours.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw words in 2-D (PCA) into this PNG.")
@click.option("--words", default=None, help="Comma-separated words for --plot (default: the query and its answers).")
@_device_opt
@_json_opt
def embeddings_cmd(run_dir: Path, word: str | None, analogy: tuple[str, str, str] | None, k: int,
                   plot: Path | None, words: str | None, device: str, as_json: bool) -> None:
    """Neighbours and analogies in the token-embedding matrix, and a 2-D map of words.

    A word is looked up as it appears inside text (with its leading space); a word that is
    several tokens is the mean of their embeddings, and the output says so.

    \b
    Example:
      gristmill inspect embeddings runs/demo --nearest king -k 10
      gristmill inspect embeddings runs/demo --analogy man king woman
      gristmill inspect embeddings runs/demo --plot words.png --words king,queen,man,woman,lord,god
    """
    from gristmill.train import inspect as ins

    if not (word or analogy or plot):
        raise InputError("give --nearest WORD, --analogy A B C, or --plot FILE --words ...")
    if word and analogy:
        raise InputError("--nearest and --analogy are exclusive")
    run = _load(run_dir, device)
    report: dict[str, Any] = {}
    plot_words: list[str] = []
    if word:
        wv, found = ins.nearest(run, word, k=k)
        _say_word(wv, report)
        report["nearest"] = _neighbours(found, as_json, header=f"nearest to {word!r}")
        plot_words = [word] + [n.token.strip() for n in found if n.token.strip()]
    if analogy:
        wvs, found = ins.analogy(run, *analogy, k=k)
        for wv in wvs:
            _say_word(wv, report)
        a, b, c = analogy
        report["analogy"] = _neighbours(found, as_json, header=f"{a} : {b} :: {c} : ?")
        plot_words = [a, b, c] + [n.token.strip() for n in found[:1] if n.token.strip()]
    if plot:
        chosen = [w.strip() for w in words.split(",") if w.strip()] if words else plot_words
        placed = ins.plot_embeddings(run, list(dict.fromkeys(chosen)), plot)
        for wv in (p[0] for p in placed):
            _say_word(wv, report)
        report["plot"] = {"file": str(plot), "points": [{"word": wv.word, "x": x, "y": y, "tokens": list(wv.tokens)}
                                                         for wv, x, y in placed]}
        echo_err(f"wrote {plot} ({len(placed)} words, PCA of their embeddings)")
    if as_json:
        emit_json(report)


def _say_word(wv: Any, report: dict[str, Any]) -> None:
    """Record how a word was looked up; tell the user when it is an average of several tokens."""
    words = report.setdefault("words", {})
    if wv.word in words:
        return
    words[wv.word] = {"ids": list(wv.ids), "tokens": list(wv.tokens), "averaged": wv.averaged}
    if wv.averaged:
        toks = ", ".join(repr(t) for t in wv.tokens)
        echo_err(f"note: {wv.word!r} is {len(wv.ids)} tokens ({toks}); using the mean of their embeddings")


def _neighbours(found: list[Any], as_json: bool, header: str) -> list[dict[str, Any]]:
    from gristmill.train.inspect import pad_cells, show_token

    if not as_json:
        click.echo(header)
        for n in found:
            click.echo(f"  {n.cosine:+.3f}  {pad_cells(show_token(n.token), 20)} (id {n.id})")
    return [{"id": n.id, "token": n.token, "cosine": n.cosine} for n in found]


@inspect.command("attention")
@_run_arg
@click.argument("text")
@click.option("--layer", type=int, default=0, show_default=True, help="Layer index (0-based).")
@click.option("--head", type=int, default=0, show_default=True, help="Head index (0-based).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the heatmap to this PNG (else print each token's strongest links).")
@_device_opt
@_json_opt
def attention_cmd(run_dir: Path, text: str, layer: int, head: int, plot: Path | None, device: str,
                  as_json: bool) -> None:
    """The attention pattern of one head over the tokens of TEXT.

    Row i shows how much the head at token i reads from each earlier token (rows sum to 1).

    \b
    Example:
      gristmill inspect attention runs/demo "O Romeo, Romeo, wherefore art thou Romeo?" --layer 1 --head 2 --plot attn.png
    """
    import torch

    from gristmill.train.inspect import attention, pad_cells, plot_attention, show_token

    amap = attention(_load(run_dir, device), text, layer=layer, head=head)
    if plot:
        plot_attention(amap, plot)
        echo_err(f"wrote {plot} ({len(amap.tokens)} tokens, layer {layer}, head {head})")
    if as_json:
        emit_json({"layer": layer, "head": head, "tokens": list(amap.tokens),
                   "weights": [[round(w, 6) for w in row] for row in amap.weights.tolist()]})
    elif not plot:
        for i, tok in enumerate(amap.tokens):
            row = amap.weights[i]
            top = torch.topk(row, min(3, i + 1))
            links = "  ".join(f"{show_token(amap.tokens[j])}:{w:.2f}" for w, j in zip(top.values.tolist(), top.indices.tolist()))
            click.echo(f"{i:>4} {pad_cells(show_token(tok), 16)} -> {links}")


@click.group()
def export() -> None:
    """Export a trained run to other ecosystems."""


@export.command("hf")
@_run_arg
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write (must be empty or absent unless --force).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Precision of the exported weights.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@_json_opt
def export_hf_cmd(run_dir: Path, out: Path, dtype: str, force: bool, as_json: bool) -> None:
    """A transformers-loadable Llama directory (config.json, model.safetensors, tokenizer files).

    \b
    Example:
      gristmill export hf runs/demo -o demo-hf
      python -c "from transformers import pipeline; print(pipeline('text-generation', 'demo-hf')('To be')[0])"
    """
    import torch

    from gristmill.train.export import export_hf

    result = export_hf(run_dir, out, dtype=getattr(torch, dtype), force=force)
    echo_err(f"export hf: wrote {result.output} ({result.parameters:,} parameters, {result.tensors} tensors, {dtype})")
    if as_json:
        emit_json({"output": str(result.output), "files": list(result.files), "parameters": result.parameters,
                   "tensors": result.tensors, "dtype": dtype, "architecture": "LlamaForCausalLM"})
