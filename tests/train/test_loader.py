"""The shard loader: memory maps, window order (pure, split over ranks), mixtures, doc alignment."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.errors import InputError
from gristmill.train.config import SourceConfig, TrainConfig, DataConfig
from gristmill.train.loader import (MixtureSampler, TrainLoader, open_source, prefetch, val_batches,
                                    val_starts)
from gristmill.train.trainer import open_sources
from tests.train.shardkit import byte_tokenizer, random_shards, write_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return random_shards(tmp_path_factory.mktemp("shards") / "s", n_docs=90, seed=1)


def _all_train_tokens(path):
    from pyarrow import ipc, memory_map

    m = json.loads((path / "manifest.json").read_text())
    out = []
    for e in sorted(m["shards"], key=lambda e: e["file"]):
        if e["split"] == "train":
            for row in ipc.open_stream(memory_map(str(path / e["file"]))).read_all().column("input_ids").to_pylist():
                out.extend(row)
    return np.asarray(out)


def test_stream_is_the_concatenated_documents_read_through_memory_maps(shards):
    src = open_source("s", shards)
    expected = _all_train_tokens(shards)
    assert src.train.n_tokens == len(expected)
    assert len(src.train._segments) > 2  # several files and record batches
    assert all(not seg.flags.owndata for seg in src.train._segments)  # views of the maps, no copies
    buf = np.empty(len(expected), np.int64)
    src.train.read(0, buf)
    np.testing.assert_array_equal(buf, expected)
    for start in (0, 17, len(expected) - 40):  # reads cross segment boundaries
        out = np.empty(40, np.int64)
        src.train.read(start, out)
        np.testing.assert_array_equal(out, expected[start:start + 40])
    starts = np.random.default_rng(0).integers(0, len(expected) - 30, 200)
    many = np.empty((200, 30), np.int64)
    src.train.read_many(starts, many)  # the batched gather, including windows across segments
    np.testing.assert_array_equal(many, expected[starts[:, None] + np.arange(30)])
    eos = src.eos_id
    ends = np.flatnonzero(expected == eos) + 1
    np.testing.assert_array_equal(src.train.doc_starts[1:], ends)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 300), g_exp=st.integers(0, 4), w_exp=st.integers(0, 2), seed=st.integers(0, 2**31))
def test_rank_slices_are_disjoint_and_rebuild_the_global_batch(n, g_exp, w_exp, seed):
    g, world = 2 ** (g_exp + w_exp), 2 ** w_exp
    sampler = MixtureSampler([n], [1.0], g, seed)
    steps = -(-n // g)  # enough steps to cover one epoch
    seen = []
    for step in range(steps):
        _, win = sampler.global_batch(step)
        parts = np.array_split(win, world)  # what ranks 0..W-1 take: contiguous equal slices
        assert sum(len(p) for p in parts) == g
        seen.extend(win.tolist())
    first_epoch = seen[:n]
    assert sorted(first_epoch) == list(range(n))  # every window exactly once per epoch


def test_same_global_batch_for_one_and_two_ranks(shards):
    src = open_source("s", shards)
    src.cut(16, doc_aligned=False)
    sampler = MixtureSampler([src.train_windows.n], [1.0], 8, seed=5)

    def rank_tokens(world, rank, mb):
        loader = TrainLoader([src], sampler, 16, rank, world, mb, doc_aligned=False, prefetch=0)
        return [np.concatenate([b.x for b in loader.step_batches(s)]) for s in range(6)]

    single = rank_tokens(1, 0, 2)      # one process, 4 accumulation steps
    r0, r1 = rank_tokens(2, 0, 4), rank_tokens(2, 1, 2)  # two processes, different accumulation
    for s in range(6):
        np.testing.assert_array_equal(single[s], np.concatenate([r0[s], r1[s]]))
        assert not any((r0[s][:, None] == r1[s][None]).all(-1).any(-1))  # no window twice


def test_window_order_is_a_pure_function_of_seed_and_step():
    a = MixtureSampler([1000], [1.0], 16, seed=1)
    b = MixtureSampler([1000], [1.0], 16, seed=1)
    c = MixtureSampler([1000], [1.0], 16, seed=2)
    np.testing.assert_array_equal(a.global_batch(40)[1], b.global_batch(40)[1])  # no history needed
    assert not np.array_equal(a.global_batch(3)[1], c.global_batch(3)[1])
    # epoch 2 is a fresh permutation, not a repeat of epoch 1
    assert not np.array_equal(a.permutation(0, 0), a.permutation(0, 1))
    assert a.epochs(63) == [1] and a.epochs(62) == [0]  # 62*16 < 1000 <= 63*16


def test_mixture_proportions_are_exact_and_deterministic():
    sizes, weights = [500, 80, 40], [0.6, 0.3, 0.1]
    s = MixtureSampler(sizes, weights, 10, seed=3)
    counts = np.zeros(3)
    for step in range(200):
        src, win = s.global_batch(step)
        counts += np.bincount(src, minlength=3)
        target = (step + 1) * 10 * np.asarray(weights)
        assert np.all(np.abs(counts - target) <= 1.0), (step, counts, target)
        assert all(win[src == k].max(initial=-1) < n for k, n in enumerate(sizes))
    np.testing.assert_array_equal(s.consumed(200), counts)
    fresh = MixtureSampler(sizes, weights, 10, seed=3)
    np.testing.assert_array_equal(fresh.global_batch(150)[0], s.global_batch(150)[0])
    # source 2 (40 windows) was used 200 times: each of its epochs is a full permutation
    used = np.concatenate([MixtureSampler(sizes, weights, 10, 3).global_batch(t)[1][
        MixtureSampler(sizes, weights, 10, 3).global_batch(t)[0] == 2] for t in range(40)])
    assert sorted(used[:40].tolist()) == list(range(40))


def test_tiny_weights_never_get_negative_quotas():
    s = MixtureSampler([100, 100, 100], [1.0, 1.0, 0.01], 2, seed=0)
    for step in range(300):
        src, _ = s.global_batch(step)
        assert len(src) == 2


def test_doc_aligned_windows_start_at_documents_and_segments_follow_eos(tmp_path):
    tok = byte_tokenizer()
    eos = tok.token_to_id("<|endoftext|>")
    rng = np.random.default_rng(0)
    docs = [[int(x) for x in rng.integers(1, 200, int(n))] + [eos] for n in rng.integers(3, 50, 80)]
    path = write_shards(tmp_path / "s", docs, docs[:5], vocab_size=tok.get_vocab_size(), eos_id=eos,
                        tokenizer=tok)
    src = open_source("s", path)
    t = 16
    src.cut(t, doc_aligned=True)
    starts = src.train_windows.starts(np.arange(src.train_windows.n))
    doc_starts = set(src.train.doc_starts.tolist())
    lengths = dict(zip(src.train.doc_starts[:-1].tolist(), np.diff(src.train.doc_starts).tolist()))
    for s in starts:
        if s not in doc_starts:  # only inside a document longer than a window, every t tokens
            d = max(x for x in doc_starts if x < s)
            assert (s - d) % t == 0 and lengths[d] > t
    assert np.all(np.diff(starts) >= t)
    sampler = MixtureSampler([src.train_windows.n], [1.0], 4, seed=0)
    loader = TrainLoader([src], sampler, t, 0, 1, 4, doc_aligned=True, prefetch=0)
    b = loader.step_batches(0)[0]
    assert b.segment_ids is not None and b.segment_ids.shape == b.x.shape
    for x, seg in zip(b.x, b.segment_ids):
        assert seg[0] == 0
        after_eos = np.flatnonzero(x[:-1] == eos) + 1  # a new document begins after each EOS
        changes = np.flatnonzero(np.diff(seg)) + 1
        np.testing.assert_array_equal(changes, after_eos)


def test_validation_windows_are_fixed_and_split_evenly(shards):
    src = open_source("s", shards)
    src.cut(8, doc_aligned=False)
    starts = val_starts(src, 7)
    np.testing.assert_array_equal(starts, val_starts(src, 7))
    assert len(starts) == 7
    per_rank = [val_batches(src, starts, r, 3, 2, False) for r in range(3)]
    assert len({len(p) for p in per_rank}) == 1  # same number of passes on every rank
    got = sorted(row.tobytes() for p in per_rank for b in p if b is not None for row in b.x)
    want = []
    for s in starts:
        buf = np.empty(9, np.int64)
        src.val.read(int(s), buf)
        want.append(buf[:-1].tobytes())
    assert got == sorted(want)


def test_bad_shard_directories_are_input_errors(tmp_path, shards):
    with pytest.raises(InputError, match="not found"):
        open_source("x", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no manifest"):
        open_source("x", tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a gristmill-shards"):
        open_source("x", bad)
    m = json.loads((shards / "manifest.json").read_text())
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for f in [e["file"] for e in m["shards"]] + ["tokenizer.json"]:
        (wrong / f).write_bytes((shards / f).read_bytes())
    (wrong / "manifest.json").write_text(json.dumps({**m, "dtype": "uint32"}))
    with pytest.raises(InputError, match="list<uint32>"):
        open_source("x", wrong)
    (wrong / "manifest.json").write_text(json.dumps(m))
    (wrong / m["shards"][0]["file"]).write_bytes(b"not arrow at all")
    with pytest.raises(InputError, match="not a readable Arrow"):
        open_source("x", wrong)


def test_too_short_data_and_mismatched_tokenizers_are_reported(tmp_path, shards):
    tiny = random_shards(tmp_path / "tiny", n_docs=1, min_len=3, max_len=4)
    with pytest.raises(InputError, match="make no window"):
        open_sources(tiny, TrainConfig(seq_len=64, batch_tokens=64))
    other = random_shards(tmp_path / "other", vocab_size=280)
    mix = DataConfig(mixture=(SourceConfig(name="a", path=shards), SourceConfig(name="b", path=other)))
    with pytest.raises(Exception, match="different tokenizers"):
        open_sources(None, TrainConfig(seq_len=8, batch_tokens=64, data=mix))


def test_prefetch_keeps_order_and_reraises_errors():
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))

    def boom():
        yield 1
        raise RuntimeError("bad shard")

    it = prefetch(boom(), 2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="bad shard"):
        next(it)


def test_prefetch_closed_early_joins_its_producer():
    # the producer is blocked putting ahead of a consumer that stopped; close must end the thread,
    # not leave it running native code while the interpreter shuts down
    it = prefetch(iter(range(1000)), 2)
    assert next(it) == 0
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "gristmill-prefetch"]

    done = prefetch(iter(range(3)), 1)
    assert list(done) == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "gristmill-prefetch"]
