"""Inspectors (next token, embeddings, attention) and the generate/inspect commands on a tiny trained run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import InputError
from gristmill.train import inspect as ins
from gristmill.train.run import load_run
from tests.expect import one_line_error
from tests.train.tiny_run import cached_tiny_run

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir():
    # grouped-query attention (4 query heads over 2 kv heads) so the attention recomputation is exercised on it
    return cached_tiny_run(steps=80, n_kv_head=2)


@pytest.fixture()
def run(run_dir):
    return load_run(run_dir)  # fresh per test: some tests edit the embedding matrix


def single_token_words(run, n):
    words = []
    for token, tid in sorted(run.tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        word = run.token_str(tid)
        if word.startswith(" ") and len(word) > 2 and word[1:].isalpha() and run.encode(word) == [tid]:
            words.append(word[1:])
    assert len(words) >= n
    return words[:n]


def test_entropy_bits():
    assert ins.entropy_bits(torch.full((4,), 0.25)) == pytest.approx(2.0)
    assert ins.entropy_bits(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(0.0)


def test_next_token_probabilities_and_temperature(run):
    text = "And the LORD said unto"
    res = ins.next_token(run, text, top=run.config.vocab_size, temperature=0.5)
    logits, _ = run.model(torch.tensor([run.encode(text)]))
    expected = logits[0, -1].softmax(-1)
    probs = [c.prob for c in res.candidates]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    top = res.candidates[0]
    assert top.prob == pytest.approx(float(expected.max()), rel=1e-5) and top.id == int(expected.argmax())
    assert top.prob_t > top.prob  # a temperature below 1 sharpens
    assert res.entropy_bits_t < res.entropy_bits <= math.log2(run.config.vocab_size)
    assert res.entropy_bits == pytest.approx(ins.entropy_bits(expected), rel=1e-4)
    with pytest.raises(InputError, match="temperature"):
        ins.next_token(run, text, temperature=0)


def test_word_vectors_average_multi_token_words(run):
    (single,) = single_token_words(run, 1)
    wv = ins.word_vector(run, single)
    assert not wv.averaged and len(wv.ids) == 1
    long = ins.word_vector(run, "Quetzalcoatlxyz")
    assert long.averaged
    rows = run.model.embed_tokens.weight[list(long.ids)]
    torch.testing.assert_close(long.vector, rows.mean(0))
    assert "".join(long.tokens).strip() == "Quetzalcoatlxyz"


def test_nearest_is_sorted_cosine_excluding_the_word(run):
    (word,) = single_token_words(run, 1)
    wv, found = ins.nearest(run, word, k=8)
    assert len(found) == 8 and wv.ids[0] not in {n.id for n in found}
    cos = [n.cosine for n in found]
    assert cos == sorted(cos, reverse=True)
    emb = run.model.embed_tokens.weight
    for n in found:
        assert n.cosine == pytest.approx(float(torch.cosine_similarity(emb[n.id], wv.vector, dim=0)), abs=1e-5)


def test_analogy_finds_planted_answer(run):
    a, b, c, d = single_token_words(run, 4)
    ids = [run.encode(" " + w)[0] for w in (a, b, c, d)]
    emb = run.model.embed_tokens.weight
    with torch.no_grad():
        emb[ids[3]] = emb[ids[1]] - emb[ids[0]] + emb[ids[2]]  # d = b - a + c exactly
    words, found = ins.analogy(run, a, b, c, k=3)
    assert found[0].id == ids[3] and found[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert not {ids[0], ids[1], ids[2]} & {n.id for n in found}


def test_pca_preserves_planar_geometry():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 2)).Q.T  # (2, 16), orthonormal rows
    pts2 = torch.randn(6, 2) * torch.tensor([3.0, 1.0])
    coords = ins.pca_2d(pts2 @ basis + 5.0)
    torch.testing.assert_close(torch.cdist(coords, coords), torch.cdist(pts2, pts2), atol=1e-4, rtol=1e-4)
    assert coords[:, 0].var() > coords[:, 1].var()  # first axis carries the most variance


def test_plot_embeddings_writes_png(run, tmp_path):
    out = tmp_path / "sub" / "emb.png"
    placed = ins.plot_embeddings(run, ["king", "queen", "Quetzalcoatlxyz"], out)
    assert out.read_bytes()[:8] == PNG and len(placed) == 3
    with pytest.raises(InputError, match="at least two"):
        ins.plot_embeddings(run, ["king"], tmp_path / "x.png")


def test_attention_weights_reproduce_the_head_output(run):
    text = "O Romeo, Romeo! wherefore art thou Romeo?"
    cfg = run.config
    layer, head = 1, 3
    amap = ins.attention(run, text, layer=layer, head=head)
    T = len(run.encode(text))
    w = amap.weights
    assert w.shape == (T, T) and len(amap.tokens) == T
    torch.testing.assert_close(w.sum(-1), torch.ones(T))
    assert torch.all(w.triu(1) == 0)  # causal: nothing from the future
    # weights @ v of this head must equal what SDPA fed into o_proj for that head
    attn = run.model.layers[layer].attn
    seen = {}
    h1 = attn.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    h2 = attn.o_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("y", a[0]))
    run.model(torch.tensor([run.encode(text)]))
    h1.remove(), h2.remove()
    D = cfg.head_dim
    kv_head = head // (cfg.n_head // cfg.n_kv_head)
    v = attn.v_proj(seen["x"]).view(1, T, cfg.n_kv_head, D)[0, :, kv_head]  # (T, D)
    torch.testing.assert_close(w @ v, seen["y"].view(1, T, cfg.n_head, D)[0, :, head], atol=1e-5, rtol=1e-4)
    with pytest.raises(InputError, match="--layer"):
        ins.attention(run, text, layer=cfg.n_layer, head=0)
    with pytest.raises(InputError, match="--head"):
        ins.attention(run, text, layer=0, head=-1)


def test_plot_attention_writes_png(run, tmp_path):
    amap = ins.attention(run, "To be, or not to be", layer=0, head=0)
    ins.plot_attention(amap, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG


# --- commands ----------------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_generate_command_json_is_reproducible(run_dir):
    args = ("generate", run_dir, "--prompt", "To be", "--seed", 5, "--max-new-tokens", 12, "--num-samples", 2,
            "--json")
    first, second = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert [s["token_ids"] for s in a["samples"]] == [s["token_ids"] for s in b["samples"]]
    assert len(a["samples"]) == 2 and all(s["new_tokens"] <= 12 for s in a["samples"])
    assert a["config"]["seed"] == 5 and a["kv_cache"] is True
    assert "generation" in first.stderr and "tok/s" in first.stderr


def test_generate_command_streams_greedy_text(run_dir):
    plain = invoke("generate", run_dir, "--prompt", "And God", "--temperature", 0, "--max-new-tokens", 15)
    streamed = invoke("generate", run_dir, "--prompt", "And God", "--temperature", 0, "--max-new-tokens", 15,
                      "--stream")
    no_cache = invoke("generate", run_dir, "--prompt", "And God", "--temperature", 0, "--max-new-tokens", 15,
                      "--no-kv-cache")
    assert plain.exit_code == streamed.exit_code == no_cache.exit_code == 0
    assert plain.stdout.startswith("And God") and len(plain.stdout) > len("And God\n")
    assert plain.stdout == streamed.stdout == no_cache.stdout


def test_generate_command_errors_are_one_line(run_dir, tmp_path):
    bad = invoke("generate", run_dir, "--temperature", -1)
    one_line_error(bad, 2, "temperature")
    missing = invoke("generate", tmp_path / "nope")
    assert missing.exit_code == 2 and "run directory not found" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_model = invoke("generate", empty)
    assert no_model.exit_code == 2 and "model.json" in no_model.output


def test_inspect_commands(run_dir, tmp_path):
    nt = invoke("inspect", "next-token", run_dir, "And the LORD", "--top", 3, "--temperature", 0.7, "--json")
    assert nt.exit_code == 0, nt.output
    data = json.loads(nt.stdout)
    assert len(data["candidates"]) == 3 and data["entropy_bits_t"] < data["entropy_bits"]
    table = invoke("inspect", "next-token", run_dir, "And the LORD")
    assert table.exit_code == 0 and "entropy" in table.stderr and len(table.stdout.splitlines()) == 11

    emb = invoke("inspect", "embeddings", run_dir, "--nearest", "Quetzalcoatlxyz", "-k", 4,
                 "--plot", tmp_path / "e.png")
    assert emb.exit_code == 0, emb.output
    assert "mean of their embeddings" in emb.stderr  # multi-token word: said so
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG
    assert len([l for l in emb.stdout.splitlines() if l.startswith("  ")]) == 4
    ana = invoke("inspect", "embeddings", run_dir, "--analogy", "man", "king", "Quetzalcoatlxyz", "--json")
    assert ana.exit_code == 0, ana.output
    data = json.loads(ana.stdout)
    assert len(data["analogy"]) == 10 and set(data["words"]) == {"man", "king", "Quetzalcoatlxyz"}
    assert data["words"]["Quetzalcoatlxyz"]["averaged"] and len(data["words"]["Quetzalcoatlxyz"]["ids"]) > 1
    nothing = invoke("inspect", "embeddings", run_dir)
    assert nothing.exit_code == 2 and "--nearest" in nothing.output

    att = invoke("inspect", "attention", run_dir, "To be, or not", "--layer", 1, "--head", 2,
                 "--plot", tmp_path / "a.png")
    assert att.exit_code == 0 and (tmp_path / "a.png").exists()
    text = invoke("inspect", "attention", run_dir, "To be, or not")
    assert text.exit_code == 0 and "->" in text.stdout
    bad = invoke("inspect", "attention", run_dir, "x", "--layer", 9)
    assert bad.exit_code == 2 and "--layer must be in 0..1" in bad.output


@pytest.mark.parametrize("cmd", [["generate"], ["inspect", "next-token"], ["inspect", "embeddings"],
                                 ["inspect", "attention"], ["export", "hf"]])
def test_help_has_example(cmd):
    res = invoke(*cmd, "--help")
    assert res.exit_code == 0 and "Example:" in res.output
