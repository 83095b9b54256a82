"""``gristmill inspect compression`` and ``gristmill inspect context`` (added to the inspect group)."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill.clikit import echo_err, emit_json
from gristmill.train.inspect_cli import _device_opt, _json_opt, _load, _run_arg, inspect


@inspect.command("compression")
@_run_arg
@click.argument("text", required=False, type=click.Path(path_type=Path))
@click.option("--max-bytes", type=click.IntRange(min=1), default=None,  # inspect_compression.DEFAULT_MAX_BYTES
              help="Measure at most this many bytes of text (whole documents, the last one cut). "
                   "[default: 2000000]")
@_device_opt
@_json_opt
def compression_cmd(run_dir: Path, text: Path | None, max_bytes: int | None, device: str, as_json: bool) -> None:
    """The model's bits per byte on TEXT beside gzip, bz2, xz and zstd, and the model's size.

    TEXT is a UTF-8 file (one document), a folder of .txt files (one document each) or a shards
    folder (its val split); without it, the val split of the shards the run was trained on.

    \b
    Example:
      gristmill inspect compression runs/demo
      gristmill inspect compression runs/demo hamlet.txt
    """
    from gristmill.train import inspect_compression as ic  # torch: imported when the command runs

    run = _load(run_dir, device)
    docs, source = ic.load_documents(run, text, ic.DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
    rep = ic.compression(run, docs, source)
    if as_json:
        emit_json(rep.as_dict())
        return
    click.echo(ic.format_compression(rep))


@inspect.command("context")
@_run_arg
@click.argument("word")
@click.option("--in", "sentences", multiple=True, required=True, metavar="SENTENCE",
              help="A sentence holding WORD (give two or more).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-layer plot to this PNG.")
@_device_opt
@_json_opt
def context_cmd(run_dir: Path, word: str, sentences: tuple[str, ...], plot: Path | None, device: str,
                as_json: bool) -> None:
    """Cosine similarity of WORD's hidden state at each layer, each sentence vs the first.

    Layer "emb" is the static token embedding (the same in every sentence); a WORD of several
    tokens is the mean of their hidden states.

    \b
    Example:
      gristmill inspect context runs/demo bank --in "sat by the river bank" --in "money in the bank" --plot bank.png
    """
    from gristmill.train.inspect import show_token
    from gristmill.train.inspect_context import context, plot_context

    rep = context(_load(run_dir, device), word, list(sentences))
    for i, w in enumerate(rep.found):
        if len(w.token_ids) > 1:
            echo_err(f"note: {word!r} is {len(w.token_ids)} tokens in sentence {i + 1} "
                     f"({', '.join(show_token(t) for t in w.tokens)}); using the mean of their hidden states")
    if plot:
        plot_context(rep, plot)
        echo_err(f"wrote {plot} ({rep.cosine.size(0)} layers, {len(rep.found)} sentences)")
    if as_json:
        emit_json(rep.to_dict())
        return
    for i, w in enumerate(rep.found):
        click.echo(f"s{i + 1}: {w.sentence}")
    click.echo("cosine with s1 " + " ".join(f"{'s' + str(j + 1):>7}" for j in range(1, len(rep.found))))
    for layer, row in enumerate(rep.cosine.tolist()):
        name = "emb" if layer == 0 else f"layer {layer}"
        click.echo(f"{name:<14} " + " ".join(f"{c:>7.3f}" for c in row[1:]))
