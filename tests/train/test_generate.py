"""Sampling: logit filters on hand-made logits, greedy with/without KV cache, seeds, EOS, streaming."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.errors import InputError
from gristmill.train.generate import (SamplingConfig, StreamDecoder, filter_logits, generate, generate_text,
                                      pick_next, top_k_mask, top_p_mask)
from gristmill.train.run import load_run
from tests.train.tiny_run import cached_tiny_run

pytestmark = pytest.mark.usefixtures("one_thread")

NEG = float("-inf")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(cached_tiny_run())


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0], [0.0, -1.0, 9.0, 8.0, 7.0]])
    out = top_k_mask(logits, 2)
    assert out.tolist() == [[NEG, 5.0, NEG, 4.0, NEG], [NEG, NEG, 9.0, 8.0, NEG]]
    assert torch.equal(top_k_mask(logits, 0), logits)   # 0 = off
    assert torch.equal(top_k_mask(logits, 10), logits)  # more than V = off


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([0.05, 0.5, 0.3, 0.15])  # sorted: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()
    assert top_p_mask(logits, 0.5).isfinite().tolist() == [False, True, False, False]
    assert top_p_mask(logits, 0.6).isfinite().tolist() == [False, True, True, False]
    assert top_p_mask(logits, 0.8).isfinite().tolist() == [False, True, True, False]
    assert top_p_mask(logits, 0.81).isfinite().tolist() == [False, True, True, True]
    assert top_p_mask(logits, 0.01).isfinite().tolist() == [False, True, False, False]  # top token always kept
    assert torch.equal(top_p_mask(logits, 1.0), logits)
    kept = top_p_mask(logits, 0.6)
    torch.testing.assert_close(kept[1:3], logits[1:3])  # surviving logits unchanged


def test_temperature_then_filters_and_greedy():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cfg = SamplingConfig(temperature=0.5, top_k=0, top_p=1.0)
    torch.testing.assert_close(filter_logits(logits, cfg), logits / 0.5)
    greedy = SamplingConfig(temperature=0)
    assert pick_next(torch.tensor([[0.1, 3.0, 2.9], [5.0, 0.0, 0.0]]), greedy, None).tolist() == [1, 0]
    # top_k=1 with a temperature is greedy too, whatever the generator draws
    g = torch.Generator().manual_seed(0)
    k1 = SamplingConfig(temperature=1.5, top_k=1)
    assert all(pick_next(logits, k1, g).item() == 0 for _ in range(20))


def test_sampling_frequencies_follow_softmax_of_scaled_logits():
    logits = torch.tensor([[0.0, math.log(3.0)]]).expand(4000, 2)  # p = 1/4, 3/4 at T=1
    g = torch.Generator().manual_seed(0)
    draws = pick_next(logits, SamplingConfig(temperature=1.0, top_k=0, top_p=1.0), g)
    assert abs(draws.float().mean().item() - 0.75) < 0.03
    hot = pick_next(logits, SamplingConfig(temperature=100.0, top_k=0, top_p=1.0), g)
    assert abs(hot.float().mean().item() - 0.5) < 0.04  # high temperature flattens


def test_config_validation():
    for bad in ({"temperature": -1}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}, {"max_new_tokens": 0},
                {"num_samples": 0}):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)


def test_greedy_with_and_without_cache_identical(run):
    prompt = run.encode("And the LORD said unto Moses")
    cfg = SamplingConfig(temperature=0, max_new_tokens=40, stop_at_eos=False)
    cached = generate(run.model, prompt, cfg, eos_id=run.eos_id, use_cache=True)
    plain = generate(run.model, prompt, cfg, eos_id=run.eos_id, use_cache=False)
    assert len(cached.token_ids) == 40
    assert cached.token_ids == plain.token_ids


def test_seeded_sampling_with_cache_matches_no_cache_and_repeats(run):
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=30, seed=7, num_samples=2,
                         stop_at_eos=False)
    a = generate_text(run, "To be", cfg)
    b = generate_text(run, "To be", cfg)
    c = generate_text(run, "To be", cfg, use_cache=False)
    assert [r.token_ids for r in a] == [r.token_ids for r in b] == [r.token_ids for r in c]
    assert a[0].token_ids != a[1].token_ids  # two samples differ
    other = generate_text(run, "To be", SamplingConfig(**{**_fields(cfg), "seed": 8}))
    assert other[0].token_ids != a[0].token_ids


def _fields(cfg: SamplingConfig) -> dict:
    return {f: getattr(cfg, f) for f in cfg.__slots__}


def test_stops_at_eos_and_at_context(run):
    model = run.model
    prompt = run.encode("hello")
    greedy = SamplingConfig(temperature=0, max_new_tokens=10, stop_at_eos=False)
    free = generate(model, prompt, greedy, eos_id=run.eos_id).token_ids
    # declare the 4th greedy token (first occurrence) to be EOS: generation stops just before it
    stop = free[3]
    first = free.index(stop)
    out = generate(model, prompt, SamplingConfig(temperature=0, max_new_tokens=10), eos_id=stop)
    assert out.finish_reason == "eos" and out.token_ids == free[:first]
    ignored = generate(model, prompt, greedy, eos_id=stop)
    assert ignored.finish_reason == "length" and ignored.token_ids == free
    long_prompt = [5] * (run.config.max_seq_len - 3)
    cfg = SamplingConfig(temperature=0, max_new_tokens=50, stop_at_eos=False)
    out = generate(model, long_prompt, cfg, eos_id=run.eos_id)
    assert out.finish_reason == "context" and len(out.token_ids) == 3
    with pytest.raises(InputError, match="no room"):
        generate(model, [5] * run.config.max_seq_len, cfg, eos_id=run.eos_id)


def test_stream_decoder_holds_partial_utf8(run):
    text = "héllo wörld — ✓ 日本語 🙂 done"
    ids = run.encode(text)
    pieces = []
    decoder = StreamDecoder(run.decode)
    for tid in ids:
        piece = decoder.push(tid)
        assert "\ufffd" not in piece
        pieces.append(piece)
    pieces.append(decoder.flush())
    assert "".join(pieces) == text
    # the byte-level vocabulary is small, so some characters span several tokens
    assert any(p == "" for p in pieces[:-1])


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=40))
def test_stream_decoder_round_trips_any_text(run, text):  # run is module-scoped, as @given requires
    decoder = StreamDecoder(run.decode)
    pieces = [decoder.push(t) for t in run.encode(text)] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in text


def test_streamed_text_equals_final_text(run):
    seen: dict[int, list[str]] = {0: [], 1: []}
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=25, seed=3, num_samples=2)
    results = generate_text(run, "The", cfg, stream=lambda i, piece: seen[i].append(piece))
    for i, r in enumerate(results):
        assert "".join(seen[i]) == r.text
        assert r.prompt_seconds > 0 and r.tokens_per_s > 0


def test_empty_prompt_starts_from_eos(run):
    (r,) = generate_text(run, "", SamplingConfig(temperature=0, max_new_tokens=5, stop_at_eos=False))
    assert r.prompt_ids == [run.eos_id] and len(r.token_ids) == 5
