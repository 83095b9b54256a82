"""The GPT model: config validation, shapes, loss, masks, KV cache, GQA, init, parameter and FLOP counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gristmill.train.model import GPT, KVCache, ModelConfig, apply_rope, default_ffn_hidden, rope_tables

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> ModelConfig:
    return ModelConfig.named("tiny", vocab_size=97, max_seq_len=64, **kw)


def model(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny(**kw)).eval()


def test_config_resolves_defaults_and_round_trips():
    cfg = tiny()
    assert cfg.n_kv_head == cfg.n_head == 4
    assert cfg.ffn_hidden == default_ffn_hidden(64) == 192
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert default_ffn_hidden(768) == 2048  # 8/3 * 768 exactly, already a multiple of 64


@pytest.mark.parametrize("kw, msg", [
    ({"d_model": 65}, "divisible by n_head"),
    ({"n_kv_head": 3}, "multiple of n_kv_head"),
    ({"n_layer": 0}, "n_layer must be a positive"),
    ({"norm_eps": 0.0}, "norm_eps must be > 0"),
    ({"d_model": 12, "n_head": 4}, "must be even"),
])
def test_config_rejects_bad_shapes(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ModelConfig(**{"vocab_size": 10, "n_head": 4, "d_model": 64, **kw})


def test_named_sizes():
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.named("huge", vocab_size=10, max_seq_len=8)
    with pytest.raises(ValueError, match="unknown model config key 'dropout'"):
        ModelConfig.from_dict({**tiny().to_dict(), "dropout": 0.1})
    with torch.device("meta"):
        small = GPT(ModelConfig.named("small", vocab_size=50257, max_seq_len=1024))
    assert 120e6 < small.num_params() < 128e6  # GPT-2 small: 124M with tied embeddings
    assert small.num_params(exclude_embeddings=True) == small.num_params() - 50257 * 768


def test_forward_shapes_and_loss_matches_cross_entropy():
    m = model()
    idx = torch.randint(0, 97, (3, 10))
    targets = torch.randint(0, 97, (3, 10))
    targets[0, :4] = -100
    logits, loss = m(idx, targets)
    assert logits.shape == (3, 10, 97)
    keep = targets != -100
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected)
    assert m(idx)[1] is None
    # an untrained model predicts roughly uniformly: loss near ln(V)
    assert abs(loss.item() - math.log(97)) < 0.5


def test_causality_future_tokens_do_not_change_past_logits():
    m = model()
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 97
    a, _ = m(idx)
    b, _ = m(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_segment_ids_equal_separate_documents():
    m = model()
    doc1, doc2 = torch.randint(0, 97, (1, 5)), torch.randint(0, 97, (1, 7))
    packed = torch.cat([doc1, doc2], dim=1)
    seg = torch.tensor([[0] * 5 + [1] * 7])
    logits, _ = m(packed, segment_ids=seg)
    torch.testing.assert_close(logits[:, :5], m(doc1)[0], atol=1e-5, rtol=1e-5)
    # RoPE is relative: doc2 at offset 5 attends like doc2 at offset 0
    torch.testing.assert_close(logits[:, 5:], m(doc2)[0], atol=1e-5, rtol=1e-5)
    # without the mask doc2 sees doc1 and its logits differ
    assert not torch.allclose(m(packed)[0][:, 5:], m(doc2)[0], atol=1e-3)


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_matches_full_forward(n_kv_head):
    m = model(n_kv_head=n_kv_head)
    idx = torch.randint(0, 97, (2, 11))
    full, _ = m(idx)
    cache = KVCache(m.config, batch_size=2, max_len=16)
    # prefill 4, then a chunk of 3 (needs the offset mask), then one at a time
    parts = [m(idx[:, :4], kv_cache=cache, start_pos=0)[0], m(idx[:, 4:7], kv_cache=cache, start_pos=4)[0]]
    parts += [m(idx[:, t:t + 1], kv_cache=cache, start_pos=t)[0] for t in range(7, 11)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_overflow_and_misuse_are_errors():
    m = model()
    cache = KVCache(m.config, batch_size=1, max_len=4)
    with pytest.raises(ValueError, match="KV cache full"):
        m(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        m(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="segment_ids cannot"):
        m(torch.zeros(1, 2, dtype=torch.long), segment_ids=torch.zeros(1, 2), kv_cache=cache)


def test_rope_rotates_pairs_of_halves_and_keeps_norm():
    cos, sin = rope_tables(head_dim=4, max_len=3, theta=10000.0)
    x = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4).expand(1, 1, 3, 4)
    y = apply_rope(x, cos, sin)
    # dim 0 pairs with dim 2 (rotate-half), at angle = position * theta^0
    for pos in range(3):
        torch.testing.assert_close(y[0, 0, pos], torch.tensor([math.cos(pos), 0.0, math.sin(pos), 0.0]))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))


def test_init_scales_residual_projections_and_tying():
    cfg = ModelConfig(vocab_size=1000, n_layer=8, n_head=4, d_model=256, max_seq_len=32)
    torch.manual_seed(0)
    m = GPT(cfg)
    assert abs(m.layers[0].attn.q_proj.weight.std().item() - 0.02) < 0.002
    assert abs(m.layers[0].attn.o_proj.weight.std().item() - 0.02 / 4) < 0.0005  # sqrt(2*8) = 4
    assert abs(m.layers[0].mlp.down_proj.weight.std().item() - 0.02 / 4) < 0.0005
    assert torch.all(m.norm.weight == 1)
    assert "lm_head.weight" not in m.state_dict()  # tied: one tensor, one key (safetensors-friendly)
    untied = GPT(ModelConfig(**{**cfg.to_dict(), "tie_embeddings": False}))
    assert "lm_head.weight" in untied.state_dict()
    assert untied.num_params() == m.num_params() + 1000 * 256


def test_init_weights_after_meta_construction():
    cfg = tiny()
    with torch.device("meta"):
        m = GPT(cfg)
    m.to_empty(device="cpu")
    torch.manual_seed(0)
    m.init_weights()
    ref = GPT(cfg)
    torch.testing.assert_close(m.rope_cos, ref.rope_cos)
    logits, loss = m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    assert torch.isfinite(loss)


def test_flops_per_token_formula():
    m = model()
    cfg = m.config
    n_matmul = m.num_params() - cfg.vocab_size * cfg.d_model + cfg.vocab_size * cfg.d_model  # tied: head counted
    assert m.flops_per_token(64) == 6 * n_matmul + 12 * cfg.n_layer * cfg.d_model * 64
    assert m.flops_per_token(128) > m.flops_per_token(64)


def test_training_step_reduces_loss():
    m = model().train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    idx = torch.randint(0, 97, (4, 16))
    first = None
    for _ in range(20):
        _, loss = m(idx[:, :-1], idx[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 1.0
