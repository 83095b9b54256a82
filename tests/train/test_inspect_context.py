"""inspect context: per-layer cosine of a word's hidden state across sentences."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import InputError
from gristmill.train.inspect_context import context, hidden_states, word_span
from gristmill.train.run import load_run
from tests.train.tiny_run import cached_tiny_run

pytestmark = pytest.mark.usefixtures("one_thread")
PNG = b"\x89PNG\r\n\x1a\n"
S = ["the king sat by the river", "a king of the land spoke"]


@pytest.fixture(scope="module")
def run():
    return load_run(cached_tiny_run(steps=40))


def test_layer0_is_the_embedding_and_same_everywhere(run):
    rep = context(run, "king", S)
    n_layer = run.config.n_layer
    assert rep.cosine.shape == (n_layer + 1, 2)
    assert torch.allclose(rep.cosine[:, 0], torch.ones(n_layer + 1))
    assert rep.found[0].token_ids == rep.found[1].token_ids  # same tokens, so the same embedding rows
    assert rep.cosine[0, 1] == pytest.approx(1.0, abs=1e-6)
    emb = run.model.embed_tokens.weight[list(rep.found[0].token_ids)].float().mean(0)
    assert torch.allclose(rep.found[0].states[0], emb, atol=1e-6)
    # the blocks read the context: past layer 0 the two sentences' states differ
    assert all(float(c) < 1 - 1e-5 for c in rep.cosine[1:, 1])


def test_states_are_the_blocks_outputs(run):
    ids, pos = word_span(run, S[0], "river")
    hs = hidden_states(run, ids)
    x = run.model.embed_tokens(torch.tensor([ids]))
    cos, sin = run.model.rope_cos[:len(ids)], run.model.rope_sin[:len(ids)]
    mask = run.model._mask(None, len(ids), 0, x.device)
    for i, block in enumerate(run.model.layers):
        x = block(x, cos, sin, mask, None, i, 0)
        assert torch.allclose(hs[i + 1], x[0].float(), atol=1e-5)


def test_several_tokens_are_averaged(run):
    word = "riverbankzq"  # not in a 400-token vocabulary as one token
    ids, pos = word_span(run, "by the riverbankzq we sat", word)
    assert len(pos) > 1
    rep = context(run, word, ["by the riverbankzq we sat", "the riverbankzq"])
    hs = hidden_states(run, ids)[:, pos].mean(1)
    assert torch.allclose(rep.found[0].states, hs)


def test_word_not_in_sentence(run):
    with pytest.raises(InputError, match="'queen' is not in the sentence"):
        context(run, "queen", S)


def test_command_table_plot_json(run, tmp_path):
    png = tmp_path / "c.png"
    args = ["inspect", "context", str(run.path), "king", "--in", S[0], "--in", S[1]]
    r = CliRunner().invoke(cli, args + ["--plot", str(png)])
    assert r.exit_code == 0, r.output
    rows = {ln[:14].strip(): ln[14:].split() for ln in r.stdout.splitlines() if ln.startswith(("emb", "layer"))}
    assert list(rows) == ["emb"] + [f"layer {i}" for i in range(1, run.config.n_layer + 1)]
    assert rows["emb"] == ["1.000"]  # the static embedding: identical in both sentences
    assert png.read_bytes()[:8] == PNG
    r = CliRunner().invoke(cli, args + ["--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["compared_with"] == "first sentence" and len(out["layers"]) == run.config.n_layer + 1
    r = CliRunner().invoke(cli, ["inspect", "context", str(run.path), "queen", "--in", S[0], "--in", S[1]])
    assert r.exit_code == 2
    assert r.output.strip() == f"Error: 'queen' is not in the sentence {S[0]!r}"
