"""The inspectors on a Chinese run: characters print as characters, pieces of one as escaped
bytes (never U+FFFD or the byte-level alphabet), columns line up, plots find a CJK font."""

from __future__ import annotations

import gzip
import json
import logging
from importlib import resources

import pytest
import torch
from click.testing import CliRunner
from rich.cells import cell_len

from gristmill.cli import cli
from gristmill.tokenize.bytelevel import byte_to_char
from gristmill.train import inspect as ins
from gristmill.train.model import GPT, ModelConfig
from gristmill.train.run import load_run
from tests.train.tiny_run import train_tokenizer, write_run

pytestmark = pytest.mark.usefixtures("one_thread")

# The byte-level alphabet's stand-ins for non-printable bytes (Ġ for a space, ...): what a
# token shows when its string is printed instead of its bytes.
BYTE_SYMBOLS = {c for b, c in byte_to_char().items() if ord(c) != b}


def zh_texts(n: int = 30) -> tuple[str, ...]:
    path = resources.files("gristmill") / "data" / "zh" / "zh-corpus.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        return tuple(json.loads(line)["text"] for _, line in zip(range(n), f))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # 600 tokens: the commonest characters get a token of their own, the rest stay byte pieces.
    tok = train_tokenizer(zh_texts(), vocab_size=600)
    torch.manual_seed(0)
    model = GPT(ModelConfig.named("tiny", vocab_size=tok.get_vocab_size(), max_seq_len=128))
    return write_run(tmp_path_factory.mktemp("zh") / "run", model.eval(), tok)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


def test_token_text_shows_characters_and_escapes_pieces(run_dir):
    run = load_run(run_dir)
    (whole,) = run.encode("之")
    assert ins.token_text(run, whole) == "之"
    pieces = run.encode("龘")  # not in the corpus: its three bytes in two or three tokens
    assert len(pieces) > 1
    assert "".join(ins.token_text(run, i) for i in pieces) == "\\xe9\\xbe\\x98"
    assert run.token_str(pieces[0]) == "\ufffd"  # what decoding a piece alone gives


def test_next_token_prints_chinese_in_aligned_columns(run_dir):
    r = invoke("inspect", "next-token", str(run_dir), "子曰", "--top", "600")
    assert r.exit_code == 0, r.output
    rows = r.stdout.splitlines()[1:]
    tokens = [row[14:].rsplit(None, 2)[0] for row in rows]
    assert any("\u4e00" <= c <= "\u9fff" for t in tokens for c in t)
    assert any(t.startswith("\\x") for t in tokens)  # byte pieces, escaped
    assert not any(c in BYTE_SYMBOLS or c == "\ufffd" for row in rows for c in row)
    # every row as wide on a terminal: a two-cell character does not push the p columns out
    assert len({cell_len(row) for row in rows}) == 1


def test_attention_and_nearest_print_chinese(run_dir):
    r = invoke("inspect", "attention", str(run_dir), "子曰：学而时习之")
    assert r.exit_code == 0, r.output
    assert "子" in r.stdout and "之" in r.stdout and "\\x" in r.stdout  # whole characters, escaped pieces
    r = invoke("inspect", "embeddings", str(run_dir), "--nearest", "之", "-k", "20")
    assert r.exit_code == 0, r.output
    assert "\ufffd" not in r.stdout and not BYTE_SYMBOLS & set(r.stdout)


def test_plots_fall_back_to_an_installed_cjk_font(monkeypatch):
    # DejaVu Serif ships with matplotlib, so it is installed everywhere; the other is not.
    monkeypatch.setattr(ins, "_CJK_FAMILIES", ("No Such CJK Font", "DejaVu Serif"))
    plt = ins._pyplot()
    assert plt.rcParams["font.family"] == ["DejaVu Sans", "DejaVu Serif"]


def test_missing_glyphs_are_one_log_line(run_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ins, "_CJK_FAMILIES", ())  # as on a machine without a CJK font
    amap = ins.attention(load_run(run_dir), "子之人不者也", layer=0, head=0)
    cjk = {c for t in amap.tokens for c in t if "\u4e00" <= c <= "\u9fff"}
    assert len(cjk) >= 3  # whole characters among the labels (the others are escaped bytes)
    with caplog.at_level(logging.WARNING, logger="gristmill.train.inspect"):
        ins.plot_attention(amap, tmp_path / "a.png")
    (record,) = caplog.records  # one line, not one warning per glyph and axis
    assert f"{len(cjk)} characters have no glyph" in record.getMessage()
    assert "fonts-noto-cjk" in record.getMessage()
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
