"""The fastText quality classifier: train/eval on a built separable set, and the clean rule."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.corpus.clean import clean
from gristmill.corpus.clean_config import load_clean_config
from gristmill.corpus.documents import part_files, removed_files
from gristmill.corpus import quality_train
from gristmill.corpus.quality_train import QualityTrainConfig, evaluate, train
from gristmill.stage import Runtime
from tests.corpus.docsets import write_dataset

GOOD = ("river mill grain wheel stone harvest village bread baker flour winter spring season "
        "field farmer orchard weather market bridge lantern story chapter letter garden").split()
BAD = ("click free casino bonus winner prize cheap deal offer subscribe download crypto "
       "loan viagra hot singles discount limited urgent unlock jackpot").split()
FILLER = "the a of and to in with was".split()


def _doc(rng: random.Random, vocab: list[str], n: int = 80) -> str:
    words = [rng.choice(vocab if rng.random() < 0.6 else FILLER) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _folder(path: Path, vocab: list[str], n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.mkdir()
    with (path / "docs.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"{path.name}-{i}", "text": _doc(rng, vocab)}) + "\n")
    return path


@pytest.fixture()
def sets(tmp_path: Path) -> tuple[Path, Path]:
    return _folder(tmp_path / "pos", GOOD, 200, 1), _folder(tmp_path / "neg", BAD, 200, 2)


def test_train_reaches_high_accuracy_and_writes_fasttext_binary(sets: tuple[Path, Path], tmp_path: Path) -> None:
    model = tmp_path / "q.bin"
    result = train(*sets, model, QualityTrainConfig(holdout=0.2))
    assert result["held_out"] >= 40 and result["accuracy"] >= 0.9
    assert result["precision"] >= 0.9 and result["recall"] >= 0.9
    head = model.read_bytes()[:4]
    assert int.from_bytes(head, "little") == 793712314  # fastText's magic number, not a pickle
    again = evaluate(*sets, model, QualityTrainConfig(holdout=0.2))
    assert {k: again[k] for k in ("held_out", "precision", "recall")} == \
        {k: result[k] for k in ("held_out", "precision", "recall")}


def test_split_is_seeded_and_deterministic(sets: tuple[Path, Path], tmp_path: Path) -> None:
    a = train(*sets, tmp_path / "a.bin", QualityTrainConfig(seed=3))
    b = train(*sets, tmp_path / "b.bin", QualityTrainConfig(seed=3))
    assert a == b and (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_cli_train_and_eval(sets: tuple[Path, Path], tmp_path: Path) -> None:
    pos, neg = sets
    model = tmp_path / "q.bin"
    r = CliRunner().invoke(cli, ["corpus", "quality", "train", "--positive", str(pos), "--negative", str(neg),
                                 "-o", str(model)])
    assert r.exit_code == 0, r.output
    assert "precision" in r.output and "recall" in r.output and model.is_file()
    r = CliRunner().invoke(cli, ["corpus", "quality", "eval", "--positive", str(pos), "--negative", str(neg),
                                 str(model), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accuracy"] >= 0.9


def test_cli_defaults_are_the_train_configs(sets: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
    class Other(QualityTrainConfig):  # other defaults: a flag left out must take these, not a copy in the CLI
        epoch: int = 9
        holdout: float = 0.3
        seed: int = 7

    seen = []
    monkeypatch.setattr(quality_train, "QualityTrainConfig", Other)
    monkeypatch.setattr(quality_train, "train", lambda *a: seen.append(a[-1]) or {"train_docs": 1, "skipped": 0,
                        "held_out": 1, "precision": 1.0, "recall": 1.0, "accuracy": 1.0, "threshold": 0.5})
    args = ["corpus", "quality", "train", "--positive", str(sets[0]), "--negative", str(sets[1]), "-o",
            str(tmp_path / "q.bin")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, [*args, "--epoch", "2", "--seed", "1"]).exit_code == 0
    assert [(c.epoch, c.holdout, c.seed) for c in seen] == [(9, 0.3, 7), (2, 0.3, 1)]
    monkeypatch.undo()
    defaults = QualityTrainConfig()
    for command, flags in (("train", ("epoch", "holdout", "seed")), ("eval", ("holdout", "seed"))):
        r = CliRunner().invoke(cli, ["corpus", "quality", command, "--help"])
        text = " ".join(r.output.split())
        for flag in flags:  # the help quotes the dataclass's default (a flag not given is left to it)
            m = re.search(rf"--{flag} .*?\[default: ([^\]]+)\]", text)
            assert m and m.group(1) == str(getattr(defaults, flag)), (command, flag, text)


def test_clean_scores_and_removes_below_min_score(sets: tuple[Path, Path], tmp_path: Path) -> None:
    model = tmp_path / "q.bin"
    train(*sets, model, QualityTrainConfig())
    rng = random.Random(7)
    docs = [{"id": f"g{i}", "text": _doc(rng, GOOD), "source": "t"} for i in range(6)]
    docs += [{"id": f"b{i}", "text": _doc(rng, BAD), "source": "t"} for i in range(6)]
    inp = write_dataset(tmp_path / "in", docs, nparts=1, row_group=4)
    cfg = load_clean_config(None, rules="none", no_lang_id=True, quality_model=str(model),
                            min_quality_score=0.5)
    result = clean(inp, tmp_path / "out", cfg, Runtime(workers=1))
    counts = result.manifest.counts
    assert counts.n_in == counts.kept + counts.n_removed
    assert counts.removed == {"quality_score": 6} and counts.kept == 6
    kept = pq.read_table(part_files(tmp_path / "out"))
    assert sorted(kept.column("id").to_pylist()) == [f"g{i}" for i in range(6)]
    assert min(kept.column("quality_score").to_pylist()) >= 0.5
    removed = pq.read_table(removed_files(tmp_path / "out"))
    assert set(removed.column("reason").to_pylist()) == {"quality_score"}
    assert all(float(d) < 0.5 for d in removed.column("detail").to_pylist())
    assert clean(inp, tmp_path / "out", cfg, Runtime(workers=1)).up_to_date
    train(*sets, model, QualityTrainConfig(epoch=2))  # a retrained model is a new input
    assert not clean(inp, tmp_path / "out", cfg, Runtime(workers=1)).up_to_date


def test_min_score_from_toml_and_a_bad_model_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"not a model")
    toml.write_text(f'[clean.quality]\nmodel = "{bogus}"\nmin_score = 0.3\n')
    cfg = load_clean_config(toml)
    assert cfg.quality.model == str(bogus) and cfg.quality.min_score == 0.3
    inp = write_dataset(tmp_path / "in", [{"id": "a", "text": "Some text here.", "source": "t"}], nparts=1)
    r = CliRunner().invoke(cli, ["corpus", "clean", str(inp), "-o", str(tmp_path / "o"), "--config", str(toml)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"Error: {bogus}: not a fastText model")
    assert not (tmp_path / "o").exists()


def test_train_never_overwrites_a_users_file_or_writes_into_an_input(sets: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("years of work\n")
    r = CliRunner().invoke(cli, ["corpus", "quality", "train", "--positive", str(sets[0]),
                                 "--negative", str(sets[1]), "-o", str(thesis)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert "not a fastText model" in r.output and thesis.read_text() == "years of work\n"
    inside = sets[0] / "q.bin"
    r = CliRunner().invoke(cli, ["corpus", "quality", "train", "--positive", str(sets[0]),
                                 "--negative", str(sets[1]), "-o", str(inside)])
    assert r.exit_code == 2 and "inside the input" in r.output and not inside.exists()
    model = tmp_path / "q.bin"
    train(*sets, model, QualityTrainConfig())
    train(*sets, model, QualityTrainConfig(seed=5))  # an earlier model is ours to replace
    assert int.from_bytes(model.read_bytes()[:4], "little") == 793712314
