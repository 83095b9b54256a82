"""Training: round trips, special-token ids, byte budget, determinism, up-to-date, transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from gristmill.errors import ConfigError, InputError
from gristmill.config import build
from gristmill.formats.stage_info import TokenizerInfo
from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.manifest import Counts, sha256_file
from gristmill.stage import Runtime
from gristmill.tokenize.fastpath import ADVERSARIAL
from gristmill.tokenize.presets import PRESET_NAMES
from gristmill.tokenize.train import TokenizerConfig, train_tokenizer
from tests.tokenizer.helpers import demo_docs, train_small, write_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Tokenizer]:
    """One small tokenizer per preset (special tokens included), trained once for the module."""
    out = {}
    for name in PRESET_NAMES:
        path = train_small(tmp_path_factory.mktemp(name), preset=name, pad_token=True,
                           special_tokens=("<|user|>",))
        out[name] = Tokenizer.from_file(str(path))
    return out


def roundtrip(tok: Tokenizer, text: str) -> str:
    return tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_adversarial_strings_round_trip(trained, name):
    for text in ADVERSARIAL:
        assert roundtrip(trained[name], text) == text


@pytest.mark.parametrize("name", PRESET_NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80) | st.text(alphabet=" \t\r\n\x00é\u0301中😀1'aA", max_size=40))
def test_any_string_round_trips(trained, name, text):
    assert roundtrip(trained[name], text) == text


def test_special_token_ids_are_fixed_and_reported(tmp_path):
    path = train_small(tmp_path, docs=demo_docs()[:20], vocab_size=600, pad_token=True,
                       special_tokens=("<|user|>", "<|bot|>"))
    tok = Tokenizer.from_file(str(path))
    expected = {"<|endoftext|>": 0, "<|pad|>": 1, "<|user|>": 2, "<|bot|>": 3}
    assert {t: tok.token_to_id(t) for t in expected} == expected
    m = read_stage_manifest(path.parent).info(TokenizerInfo)
    assert m.special_tokens == expected and m.eos_id == 0
    assert m.tokenizer_sha256 == sha256_file(path)
    assert m.vocab_size == tok.get_vocab_size() == 600
    # without --pad, the user's tokens move up by one; <|endoftext|> stays 0
    path2 = train_small(tmp_path / "b", docs=demo_docs()[:20], vocab_size=700, special_tokens=("<|user|>",))
    tok2 = Tokenizer.from_file(str(path2))
    assert tok2.token_to_id("<|endoftext|>") == 0 and tok2.token_to_id("<|user|>") == 1
    assert tok2.token_to_id("<|pad|>") is None


def test_training_is_deterministic_and_thread_independent(tmp_path):
    data = write_dataset(tmp_path / "docs", list(demo_docs()[:40]))
    cfg = TokenizerConfig(vocab_size=700)
    a = train_tokenizer(data, tmp_path / "a", cfg, Runtime(workers=1))
    b = train_tokenizer(data, tmp_path / "b", cfg, Runtime(workers=2))
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "b/tokenizer.json").read_bytes()
    assert a.manifest.info(TokenizerInfo).tokenizer_sha256 == b.manifest.info(TokenizerInfo).tokenizer_sha256


def test_up_to_date_and_rerun_on_change(tmp_path):
    data = write_dataset(tmp_path / "docs", list(demo_docs()[:10]))
    cfg = TokenizerConfig(vocab_size=500)
    first = train_tokenizer(data, tmp_path / "t", cfg, Runtime())
    assert not first.up_to_date
    assert train_tokenizer(data, tmp_path / "t", cfg, Runtime()).up_to_date
    assert not train_tokenizer(data, tmp_path / "t", cfg, Runtime(force=True)).up_to_date
    assert not train_tokenizer(data, tmp_path / "t", TokenizerConfig(vocab_size=510), Runtime()).up_to_date


def test_byte_budget_samples_uniformly_and_reconciles(tmp_path):
    docs = [{"id": f"d{i}", "text": f"document {i} " + "word " * (20 + i % 7), "source": "s"}
            for i in range(300)]
    data = write_dataset(tmp_path / "docs", docs, per_part=70)
    total = sum(len(d["text"].encode()) for d in docs)
    res = train_tokenizer(data, tmp_path / "t", TokenizerConfig(vocab_size=300, max_bytes=total // 3),
                          Runtime())
    info, c = res.manifest.info(TokenizerInfo), res.manifest.counts
    s = info.sample
    assert s.sampled and s.bytes_total == total
    assert total // 3 - 200 < s.bytes_used <= total // 3
    assert c.n_in == 300 and c.kept == s.docs_used
    assert c.removed == {"outside_byte_budget": 300 - s.docs_used}
    # same ids, same seed, different partitioning: same sample
    data2 = write_dataset(tmp_path / "docs2", docs, per_part=1000)
    res2 = train_tokenizer(data2, tmp_path / "t2", TokenizerConfig(vocab_size=300, max_bytes=total // 3),
                           Runtime())
    info2 = res2.manifest.info(TokenizerInfo)
    assert info2.sample == s
    assert info2.tokenizer_sha256 == info.tokenizer_sha256
    res3 = train_tokenizer(data, tmp_path / "t3", TokenizerConfig(vocab_size=300, max_bytes=total // 3,
                                                                  seed=7), Runtime())
    info3 = res3.manifest.info(TokenizerInfo)
    assert info3.sample.bytes_used != s.bytes_used or info3.tokenizer_sha256 != info.tokenizer_sha256


def test_budget_covering_everything_does_not_sample(tmp_path):
    data = write_dataset(tmp_path / "docs", list(demo_docs()[:5]))
    res = train_tokenizer(data, tmp_path / "t", TokenizerConfig(vocab_size=400, max_bytes=10**9), Runtime())
    assert not res.manifest.info(TokenizerInfo).sample.sampled
    assert res.manifest.counts == Counts(n_in=5, kept=5)


def test_budget_smaller_than_any_document_is_a_user_error(tmp_path):
    data = write_dataset(tmp_path / "docs", [{"id": "a", "text": "x" * 100, "source": "s"}])
    with pytest.raises(InputError, match="max-bytes"):
        train_tokenizer(data, tmp_path / "t", TokenizerConfig(vocab_size=300, max_bytes=10), Runtime())


def test_null_text_is_counted_not_trained_on(tmp_path):
    docs = [{"id": "a", "text": "hello world " * 5, "source": "s"}, {"id": "b", "text": None, "source": "s"}]
    data = write_dataset(tmp_path / "docs", docs)
    res = train_tokenizer(data, tmp_path / "t", TokenizerConfig(vocab_size=300), Runtime())
    assert res.manifest.counts == Counts(n_in=2, kept=1, removed={"no_text": 1})


def test_bad_inputs_are_user_errors(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(InputError, match="no manifest"):
        train_tokenizer(tmp_path / "raw", tmp_path / "t", TokenizerConfig(), Runtime())
    empty = write_dataset(tmp_path / "empty", [])
    with pytest.raises(InputError, match="no documents"):
        train_tokenizer(empty, tmp_path / "t", TokenizerConfig(), Runtime())


@pytest.mark.parametrize("values, key", [
    ({"vocab_size": 100}, "vocab_size"), ({"preset": "llama"}, "preset"),
    ({"special_tokens": ["<|endoftext|>"]}, "distinct"), ({"min_frequency": 0}, "min_frequency"),
    ({"max_bytes": 0}, "max_bytes"), ({"vocab_sise": 5}, "vocab_sise"),
])
def test_config_errors_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key):
        build(TokenizerConfig, values)


def test_transformers_loads_it_with_eos_and_pad(tmp_path):
    transformers = pytest.importorskip("transformers")
    path = train_small(tmp_path, docs=demo_docs()[:20], vocab_size=600, pad_token=True)
    ref = Tokenizer.from_file(str(path))
    text = "Thou art more lovely 12345 😀\r\n\tand more temperate"
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|endoftext|>",
                                                pad_token="<|pad|>")
    ids = fast(text, add_special_tokens=False)["input_ids"]
    assert ids == ref.encode(text, add_special_tokens=False).ids
    assert fast.decode(ids) == text
    auto = transformers.PreTrainedTokenizerFast.from_pretrained(str(path.parent))
    assert (auto.eos_token_id, auto.pad_token_id) == (0, 1)
    batch = auto(["a b c d", "a"], padding=True)["input_ids"]
    assert batch[1][-1] == 1 and auto.decode(auto(text)["input_ids"]) == text
