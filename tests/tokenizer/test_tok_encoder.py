"""The encoder the shard writer calls: tiktoken fast path proven equal to tokenizers, else fallback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gristmill.errors import InputError
from gristmill.tokenize.encoder import load_encoder
from gristmill.tokenize.fastpath import ADVERSARIAL
from gristmill.tokenize.presets import PRESET_NAMES
from tests.tokenizer.helpers import demo_docs, train_small

VARIANTS = [(n, d) for n in PRESET_NAMES for d in (False, True)]


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[tuple[str, bool], Path]:
    docs = demo_docs()[:40] + ({"id": "num", "text": "1234567 89 2024-01-01 " * 50, "source": "s"},)
    return {(n, d): train_small(tmp_path_factory.mktemp(f"{n}{d}"), docs=docs, preset=n, split_digits=d,
                                pad_token=True)
            for n, d in VARIANTS}


_PAIRS: dict[Path, tuple] = {}


def pair(path: Path):
    """(fast, reference) encoders for a file, loaded once per test session."""
    if path not in _PAIRS:
        _PAIRS[path] = load_encoder(path, threads=1), load_encoder(path, threads=1, fast=False)
    return _PAIRS[path]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_path_is_chosen_and_equal_on_adversarial_strings(paths, variant):
    fast, ref = load_encoder(paths[variant], threads=1), load_encoder(paths[variant], threads=1, fast=False)
    assert fast.backend == "tiktoken" and fast.fallback_reason is None
    assert ref.backend == "tokenizers"
    texts = ADVERSARIAL + [d["text"] for d in demo_docs()[300:330]]
    assert fast.encode_batch(texts) == ref.encode_batch(texts)
    assert all(fast.decode(ids) == t for ids, t in zip(fast.encode_batch(texts), texts))
    assert (fast.eos_id, fast.vocab_size) == (0, 800)


@pytest.mark.parametrize("variant", [("cl100k", False), ("o200k", False), ("gpt2", True)])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=60) | st.text(alphabet=" \t\r\n\x00'sSdt1é\u0301中😀aA/", max_size=30),
                      min_size=1, max_size=4))
def test_fast_path_equals_tokenizers_on_any_string(paths, variant, texts):
    fast, ref = pair(paths[variant])
    assert fast.backend == "tiktoken"
    raw = [fast.fast.encode_ordinary(t) for t in texts]  # the raw fast path, not its self-check
    assert raw == ref.encode_batch(texts)


def test_threads_do_not_change_ids(paths):
    path = paths[("cl100k", False)]
    texts = [d["text"] for d in demo_docs()[:50]]
    assert load_encoder(path, threads=2).encode_batch(texts) == load_encoder(path, threads=1).encode_batch(texts)


@pytest.mark.parametrize("fast", [True, False])
def test_special_token_text_inside_a_document_is_ordinary_text(paths, fast):
    enc = load_encoder(paths[("cl100k", False)], threads=1, fast=fast)
    ids = enc.encode("before <|endoftext|> after <|pad|>")
    assert enc.eos_id not in ids and 1 not in ids
    assert enc.decode(ids) == "before <|endoftext|> after <|pad|>"


def _edit(src: Path, dst: Path, change) -> Path:
    spec = json.loads(src.read_text())
    change(spec)
    dst.write_text(json.dumps(spec))
    return dst


def test_falls_back_when_the_tokenizer_is_not_plain(paths, tmp_path):
    src = paths[("cl100k", False)]
    cases = {
        "normalizer": lambda s: s.__setitem__("normalizer", {"type": "NFC"}),
        "split regex": lambda s: s["pre_tokenizer"]["pretokenizers"][0]["pattern"].__setitem__("Regex", r"\w+|\s+"),
        "dropout": lambda s: s["model"].__setitem__("dropout", 0.1),
    }
    for name, change in cases.items():
        enc = load_encoder(_edit(src, tmp_path / f"{name}.json", change), threads=1)
        assert enc.backend == "tokenizers", name
        assert name.split()[0] in enc.fallback_reason.lower().replace("regex", "split regex"), enc.fallback_reason


def test_published_cl100k_regex_in_tokenizers_gets_no_fast_path(paths, tmp_path):
    from gristmill.tokenize.presets import get_preset
    path = _edit(paths[("cl100k", False)], tmp_path / "t.json",
                 lambda s: s["pre_tokenizer"]["pretokenizers"][0]["pattern"].__setitem__(
                     "Regex", get_preset("cl100k").pattern))
    assert load_encoder(path, threads=1).backend == "tokenizers"


def test_load_time_check_catches_ranks_that_do_not_replay_merges(paths, tmp_path):
    """Swap the ids of two learned tokens: tokenizers still follows its merge list, tiktoken the ids."""
    def swap(spec):
        vocab = spec["model"]["vocab"]
        merged = [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i >= 260]
        a, b = merged[0], merged[-1]
        vocab[a], vocab[b] = vocab[b], vocab[a]
    path = _edit(paths[("cl100k", False)], tmp_path / "swapped.json", swap)
    enc = load_encoder(path, threads=1)
    assert enc.backend == "tokenizers" and "differ" in enc.fallback_reason
    ref = load_encoder(path, threads=1, fast=False)
    assert enc.encode_batch(ADVERSARIAL) == ref.encode_batch(ADVERSARIAL)


def test_first_documents_are_cross_checked_and_a_difference_falls_back(paths):
    enc = load_encoder(paths[("gpt2", False)], threads=1)
    ref = load_encoder(paths[("gpt2", False)], threads=1, fast=False)
    real = enc.fast

    class Wrong:
        def encode_ordinary(self, text):
            return real.encode_ordinary(text)[::-1]
    enc.fast = Wrong()
    texts = ["hello there world", "more text here"]
    assert enc.encode_batch(texts) == ref.encode_batch(texts)
    assert enc.backend == "tokenizers" and "differ" in enc.fallback_reason


def test_cross_check_stops_after_the_budget(paths):
    enc = load_encoder(paths[("gpt2", False)], threads=1, verify_docs=3)
    enc.encode_batch(["a", "b"])
    assert enc.verify_left == 1
    enc.encode_batch(["c", "d"])
    assert enc.verify_left == 0 and enc.backend == "tiktoken"


def test_errors(tmp_path, paths):
    with pytest.raises(InputError, match="not found"):
        load_encoder(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a tokenizers JSON"):
        load_encoder(tmp_path / "bad.json")
    no_eos = _edit(paths[("gpt2", False)], tmp_path / "noeos.json",
                   lambda s: s["added_tokens"][0].__setitem__("content", "<|eos|>"))
    with pytest.raises(InputError, match="endoftext"):
        load_encoder(no_eos)


def test_in_a_dask_worker_one_thread_and_no_tokenizers_pool(paths):
    from gristmill.infra.dask import dask_client
    from gristmill.stage import Runtime

    def probe(path: str):
        enc = load_encoder(path)
        return enc.threads, os.environ.get("TOKENIZERS_PARALLELISM"), enc.backend, enc.encode("hi there")

    path = str(paths[("cl100k", False)])
    with dask_client(Runtime(workers=1)) as client:
        threads, env, backend, ids = client.submit(probe, path).result()
    assert (threads, env, backend) == (1, "false", "tiktoken")
    assert ids == load_encoder(path, fast=False).encode("hi there")
