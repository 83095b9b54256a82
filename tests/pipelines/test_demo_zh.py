"""`gristmill demo --corpus zh`: the shipped Chinese corpus and pipeline, and a reduced run of it
(tiny model, a few steps) that keeps, deduplicates and samples Chinese text."""

from __future__ import annotations

import gzip
import json
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.demo import DEMOS, show_demo, write_demo_pipeline
from gristmill.pipelines.spec import load_pipeline
from gristmill.tokenize.bytelevel import byte_to_char

ZH = DEMOS["zh"]
CORPUS = Path(__file__).resolve().parents[2] / "gristmill" / "data" / "zh" / "zh-corpus.jsonl.gz"
STAGES = ("ingest", "clean", "dedup", "tokenizer", "shards", "train")
# Characters the byte-level alphabet uses for non-printable bytes (Ġ for a space, ...).
BYTE_SYMBOLS = {c for b, c in byte_to_char().items() if ord(c) != b}


def invoke(*args: str):
    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


def han(text: str) -> int:
    return sum(1 for c in text if unicodedata.name(c, "").startswith("CJK UNIFIED IDEOGRAPH"))


def test_corpus_is_valid_classical_chinese():
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    assert len(docs) == 409
    assert all(set(d) == {"id", "text", "source"} and d["text"] for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    assert {d["source"] for d in docs} == {"tang300", "song100", "shijing", "shici", "lunyu", "daodejing",
                                           "caigentan", "zengguang", "yanyu"}
    text = "".join(d["text"] for d in docs)
    assert han(text) > 0.6 * len(text)  # the rest: punctuation, line breaks, attribution indents
    # the build left out the package's colour codes, modern books and anything Latin
    assert "\x1b" not in text and not any("a" <= c.lower() <= "z" for c in text)
    assert "鲁迅" not in text and "毛泽东" not in text


def test_pipeline_file_loads_with_zh_settings(tmp_path):
    pipe = load_pipeline(ZH.pipeline, root=tmp_path)
    assert [s.name for s in pipe.stages] == list(STAGES)
    assert pipe.layout.inputs == (CORPUS,)
    clean, dedup, tok = pipe.configs["clean"], pipe.configs["dedup"], pipe.configs["tokenizer"]
    assert clean.profile == "zh" and clean.lang.languages == ("zh",)
    assert not clean.fineweb.enabled and clean.gopher_quality.min_stop_words == 0
    assert clean.gopher_quality.min_words == 100  # the profile's own rule, kept
    assert dedup.shingle == "char" and dedup.ngram == 5 and dedup.threshold == 0.7
    assert tok.preset == "gpt2" and tok.vocab_size == 4096


def test_demo_command_writes_the_zh_pipeline_and_plans_it(tmp_path):
    r = invoke("demo", "--corpus", "zh", "-o", str(tmp_path / "d"), "--dry-run")
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.stderr.splitlines() if "would run" in line] == list(STAGES)
    copy = load_pipeline(tmp_path / "d" / "pipeline.toml")
    assert copy.layout.root == tmp_path / "d" and copy.layout.inputs[0] == CORPUS
    assert not (tmp_path / "d" / "01-ingest").exists()


def test_demo_corpus_choice_is_checked(tmp_path):
    r = invoke("demo", "--corpus", "fr", "-o", str(tmp_path / "d"), "--dry-run")
    assert r.exit_code == 2 and "'fr' is not one of 'en', 'zh'" in r.output


def reduced(tmp_path: Path) -> Path:
    """The shipped zh pipeline with a tiny model and a few steps (the data stages as shipped)."""
    text = write_demo_pipeline(ZH.pipeline, tmp_path / "out").read_text(encoding="utf-8")
    for old, new in (('model = "mini"', 'model = "tiny"'), ("max_steps = 400", "max_steps = 6"),
                     ("seq_len = 256", "seq_len = 64"), ("batch_tokens = 2048", "batch_tokens = 512"),
                     ("every = 50", "every = 3"), ("vocab_size = 4096", "vocab_size = 2048")):
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / "out" / "pipeline.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("zh")
    p = reduced(tmp)
    r = invoke("run", str(p), "--workers", "2", "--json")
    assert r.exit_code == 0, r.output
    return p, json.loads(r.stdout)["stages"]


def test_reduced_run_keeps_dedups_and_shards_chinese(ran):
    p, stages = ran
    assert [(s["stage"], s["action"]) for s in stages] == [(name, "ran") for name in STAGES]
    counts = {s["stage"]: s["counts"] for s in stages if s.get("counts")}
    assert counts["clean"] == {"in": 409, "kept": 405, "removed": {"gopher_short_doc": 3, "lang_low_score": 1}}
    # the package's second copies of 论语's 学而 and 为政 chapters, found on character shingles
    assert counts["dedup"] == {"in": 405, "kept": 403, "removed": {"near_duplicate": 2}}
    pipe = load_pipeline(p)
    r = invoke("corpus", "show-removed", str(pipe.layout.dir("dedup")), "-n", "5")
    assert r.exit_code == 0, r.output
    heads = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("──")]
    kept = [line.split()[1].rstrip(":") for line in r.stdout.splitlines() if line.startswith("   duplicates ")]
    assert heads == ["lunyu/0004", "lunyu/0005"] and kept == ["lunyu/0001", "lunyu/0000"]
    assert {f.name for f in pipe.layout.dir("shards").glob("*.arrow")} == {"train-00000.arrow", "val-00000.arrow"}


def test_reduced_run_samples_chinese(ran):
    p, _ = ran
    said: list[str] = []
    summary = show_demo(load_pipeline(p), prompt=ZH.prompt, more_prompt=ZH.more_prompt, say=said.append)
    assert han(summary["sample"]["text"]) > 0
    assert any(line.startswith(ZH.prompt) for line in said)
    assert any("--prompt '明月'" in line for line in said)


def test_tokenizer_show_prints_characters_not_byte_symbols(ran):
    p, _ = ran
    tok = load_pipeline(p).layout.dir("tokenizer") / "tokenizer.json"
    r = invoke("tokenizer", "show", str(tok), "床前明月光，疑是地上霜。")
    assert r.exit_code == 0, r.output
    line = r.stdout.splitlines()[0]
    assert "[明月]" in line or ("[明]" in line and "[月]" in line)
    assert "[，]" in line  # GPT-2's split keeps punctuation out of the characters' tokens
    assert han(line) >= 8 and not BYTE_SYMBOLS & set(line) and "\ufffd" not in line
