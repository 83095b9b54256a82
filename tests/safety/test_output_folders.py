"""A stage writes only into a folder it owns and deletes only what its own earlier runs listed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gristmill.errors import GristmillError
from gristmill.formats.stage_manifest import ManifestError, read_stage_manifest
from gristmill.locks import FileLock
from gristmill.manifest import MANIFEST, Counts
from gristmill.stage import StageRun
from tests.expect import one_line_error, snapshot


def _refused(r, folder: Path, why: str) -> None:
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)
    line = r.output.strip()
    assert "\n" not in line and str(folder) in line and why in line, line


def test_ingest_into_its_own_input_folder_is_refused_and_every_file_survives(invoke, raw_dir):
    before = snapshot(raw_dir)
    _refused(invoke("corpus", "ingest", raw_dir, "-o", raw_dir, "--workers", "1"), raw_dir, "is also an input")
    assert snapshot(raw_dir) == before


def test_ingest_into_a_users_folder_is_refused_and_the_thesis_survives(invoke, raw_dir, user_folder):
    before = snapshot(user_folder)
    for force in ((), ("--force",)):  # --force never makes a folder ours
        r = invoke("corpus", "ingest", raw_dir / "a.jsonl", "-o", user_folder, "--workers", "1", *force)
        _refused(r, user_folder, "is not empty and holds no gristmill ingest output")
    assert snapshot(user_folder) == before


@pytest.mark.parametrize("where", ["inside", "above", "symlink"])
def test_output_inside_or_above_an_input_is_refused(invoke, raw_dir, tmp_path, where):
    out = {"inside": raw_dir / "out", "above": raw_dir.parent, "symlink": tmp_path / "link"}[where]
    if where == "symlink":  # a link to the input is the input
        out.symlink_to(raw_dir)
    before = snapshot(raw_dir)
    r = invoke("corpus", "ingest", raw_dir, "-o", out, "--workers", "1")
    _refused(r, out, {"inside": "is inside the input", "above": "holds the input",
                      "symlink": "is also an input"}[where])
    assert snapshot(raw_dir) == before and not (raw_dir / "out").exists()


@pytest.mark.parametrize("command", ["tokenizer", "shards", "clean"])
def test_every_stage_refuses_to_write_over_its_input(invoke, corpus, tokenizer, command):
    before = snapshot(corpus.parent)
    if command == "tokenizer":
        r = invoke("tokenizer", "train", corpus, "-o", corpus, "--vocab-size", "300")
        out, why = corpus, "is also an input"
    elif command == "shards":
        r = invoke("shards", "write", corpus, "--tokenizer", tokenizer, "-o", corpus, "--workers", "1")
        out, why = corpus, "is also an input"
    else:  # clean S/ingest -o S: the output would hold its input
        r = invoke("corpus", "clean", corpus, "-o", corpus.parent, "--workers", "1")
        out, why = corpus.parent, "holds the input"
    _refused(r, out, why)
    assert snapshot(corpus.parent) == before


def test_a_folder_holding_another_stages_output_is_refused(invoke, raw_dir, corpus):
    before = snapshot(corpus)
    r = invoke("corpus", "ingest", raw_dir, "-o", corpus, "--workers", "1", "--force")
    _refused(r, corpus, "holds a 'fixture' stage's output")
    assert snapshot(corpus) == before


def test_rerun_prunes_only_what_its_previous_manifest_listed(invoke, raw_dir, tmp_path):
    """Rule: a file the stage did not list is the user's, even inside the stage's folder; it is
    left alone (and logged), on a rerun and on --force alike."""
    out = tmp_path / "ingest"
    first = invoke("corpus", "ingest", raw_dir / "a.jsonl", "-o", out, "--workers", "1", "--chunk-bytes", "4096")
    assert first.exit_code == 0, first.output
    old = {e.file for e in read_stage_manifest(out).outputs}
    assert len([f for f in old if f.startswith("part-")]) > 1  # several parts, so a rerun has stale ones
    (out / "my-notes.txt").write_text("mine")
    (out / "removed").mkdir(exist_ok=True)
    (out / "removed" / "keep-me.parquet").write_bytes(b"not gristmill's")
    second = invoke("corpus", "ingest", raw_dir / "a.jsonl", "-o", out, "--workers", "1", "--force")
    assert second.exit_code == 0, second.output
    new = {e.file for e in read_stage_manifest(out).outputs}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert on_disk == new | {MANIFEST, "my-notes.txt", "removed/keep-me.parquet"}
    assert old - new and not any((out / f).exists() for f in old - new)  # stale parts gone
    assert (out / "my-notes.txt").read_text() == "mine"
    assert (out / "removed" / "keep-me.parquet").read_bytes() == b"not gristmill's"


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cfg:
    n: int = 1


def _publish(run: StageRun, *names: str) -> None:
    for name in names:
        run.tmp_path(name).write_text(name)
        run.publish(name, rows=1)


def test_files_a_crashed_run_published_are_pruned_by_the_next_but_user_files_are_not(tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out"
    inp.write_text("x")
    crashed = StageRun("toy", out, _Cfg(), [inp])
    crashed.begin()
    _publish(crashed, "a.txt", "sub/b.txt")  # ... then the process dies: no manifest
    (out / "user.txt").write_text("mine")
    rerun = StageRun("toy", out, _Cfg(n=2), [inp])
    rerun.begin()
    _publish(rerun, "a.txt")
    rerun.finish(Counts(n_in=1, kept=1))
    assert not (out / "sub").exists() and (out / "user.txt").read_text() == "mine"
    assert [e.file for e in read_stage_manifest(out).outputs] == ["a.txt"]


def test_an_output_from_before_markers_is_still_its_stages_own(tmp_path):
    out = tmp_path / "out"
    old = StageRun("toy", out, _Cfg(), [])
    old.begin()
    _publish(old, "a.txt", "b.txt")
    old.finish()
    (out / ".gristmill-stage.jsonl").unlink()  # as an older gristmill left it: manifest only
    (out / "user.txt").write_text("mine")
    rerun = StageRun("toy", out, _Cfg(n=2), [])
    rerun.begin()
    _publish(rerun, "a.txt")
    rerun.finish()
    assert not (out / "b.txt").exists() and (out / "user.txt").read_text() == "mine"


def test_a_folder_with_only_a_foreign_manifest_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text("{ my own json")
    with pytest.raises(GristmillError, match="has a manifest.json that is not gristmill's"):
        StageRun("toy", out, _Cfg(), []).begin()
    assert (out / MANIFEST).read_text() == "{ my own json"


@pytest.mark.parametrize("file", ["../outside.txt", "/etc/passwd", "a/../../x", "", "link/secret"])
def test_manifest_reader_refuses_a_file_outside_the_folder(tmp_path, file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)  # a folder link leading out of the stage folder
    entry = {"file": file, "rows": 1, "bytes": 1, "sha256": "0" * 64}
    (out / MANIFEST).write_text(json.dumps({"stage": "toy", "outputs": [entry]}))
    with pytest.raises(ManifestError, match="output file") as e:
        read_stage_manifest(out)
    assert "\n" not in e.value.message and str(out) in e.value.message


def test_manifest_reader_types_versions_and_corruption(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert read_stage_manifest(out) is None
    legacy = {"stage": "toy", "config_hash": "h", "outputs": [{"file": "a", "rows": 2, "bytes": 3,
                                                               "sha256": "s", "split": "train"}],
              "counts": {"in": 2, "kept": 2, "removed": {}}, "vocab_size": 9}
    (out / MANIFEST).write_text(json.dumps(legacy))
    m = read_stage_manifest(out)
    assert m.manifest_version == 1 and m.outputs[0].extra == {"split": "train"} and m.extra == {"vocab_size": 9}
    assert m.counts == Counts(n_in=2, kept=2)
    for bad, why in (({**legacy, "outputs": [{"file": "a", "bytes": "3"}]}, "'bytes' has the wrong type"),
                     ({**legacy, "manifest_version": 99}, "manifest_version 99 is not supported"),
                     ({k: v for k, v in legacy.items() if k != "stage"}, "missing key 'stage'")):
        (out / MANIFEST).write_text(json.dumps(bad))
        with pytest.raises(ManifestError, match=why):
            read_stage_manifest(out)
    (out / MANIFEST).write_bytes(b"\xff\xfe")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_stage_manifest(out)


def test_new_manifests_carry_their_version(tmp_path):
    run = StageRun("toy", tmp_path / "o", _Cfg(), [])
    run.begin()
    run.finish()
    assert read_stage_manifest(tmp_path / "o").manifest_version == 2


def test_tokenizer_to_a_file_never_replaces_a_users_file(invoke, corpus, tmp_path):
    mine = tmp_path / "my-tok.json"
    mine.write_text('{"mine": true}')
    r = invoke("tokenizer", "train", corpus, "-o", mine, "--vocab-size", "300", "--force")
    assert r.exit_code == 2 and f"{mine} exists and was not written by" in r.output, r.output
    assert mine.read_text() == '{"mine": true}'


def test_export_force_never_replaces_a_users_folder_or_the_run(invoke, user_folder):
    from tests.train.tiny_run import cached_tiny_run

    run_dir = cached_tiny_run(steps=20)
    before, run_before = snapshot(user_folder), snapshot(run_dir)
    r = invoke("export", "hf", run_dir, "-o", user_folder, "--force")
    assert r.exit_code == 2 and f"{user_folder} holds files that are not an export" in r.output, r.output
    r = invoke("export", "hf", run_dir, "-o", run_dir, "--force")
    assert r.exit_code == 2 and "must be outside the run directory" in r.output, r.output
    assert snapshot(user_folder) == before and snapshot(run_dir) == run_before



def _tiny_run() -> Path:
    from tests.train.tiny_run import cached_tiny_run

    return cached_tiny_run(steps=20)


def test_export_builds_in_a_fresh_folder_and_a_users_tmp_export_folder_survives(invoke, tmp_path):
    """The export used to build in OUT.tmp-export after rmtree-ing whatever had that name."""
    from gristmill.train.export import HF_FILES  # torch: only when an export test runs

    out, mine = tmp_path / "hf", tmp_path / "hf.tmp-export"
    mine.mkdir()
    (mine / "notes.md").write_text("# not an export\n")
    before = snapshot(mine)
    for force in ((), ("--force",)):  # new, then over its own earlier export
        r = invoke("export", "hf", _tiny_run(), "-o", out, *force)
        assert r.exit_code == 0, r.output
    assert snapshot(mine) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(HF_FILES)
    assert not list(tmp_path.glob(".hf.export-*"))  # the build folder was moved into place


@pytest.mark.parametrize("kind", ["folder", "link"])
def test_export_force_refuses_a_folder_or_link_with_an_export_files_name(invoke, tmp_path, kind):
    """An entry named like an export's file is still the user's unless it is a plain file."""
    out, thesis = tmp_path / "hf", tmp_path / "thesis.tex"
    thesis.write_text("years of work\n")
    out.mkdir()
    (out / "tokenizer.json").write_text("{}")  # an earlier export's file: that alone would be replaced
    if kind == "folder":
        (out / "config.json").mkdir()
        (out / "config.json" / "mine.txt").write_text("mine\n")
        why = "(config.json/)"
    else:
        (out / "model.safetensors").symlink_to(thesis)
        why = "(model.safetensors (a link))"
    before = snapshot(out)
    r = invoke("export", "hf", _tiny_run(), "-o", out, "--force")
    one_line_error(r, 2, f"{out} holds files that are not an export {why}")
    assert snapshot(out) == before and thesis.read_text() == "years of work\n"
    assert (out / "config.json").is_dir() if kind == "folder" else (out / "model.safetensors").is_symlink()
    assert not list(tmp_path.glob(".hf.export-*"))


def test_a_second_export_to_the_same_folder_is_refused_while_one_runs(invoke, tmp_path):
    out = tmp_path / "hf"
    with FileLock.acquire(tmp_path / ".hf.export.lock", busy="held by the test"):
        r = invoke("export", "hf", _tiny_run(), "-o", out)
        one_line_error(r, 2, str(out), f"pid {os.getpid()}", "another export")
    assert not out.exists() and not list(tmp_path.glob(".hf.export-*"))
    assert invoke("export", "hf", _tiny_run(), "-o", out).exit_code == 0  # released: it goes ahead


def test_a_failed_export_removes_only_its_own_build_folder(invoke, tmp_path, monkeypatch):
    import gristmill.train.export as export

    def broken(run, run_dir, tmp, dtype):
        (tmp / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    out = tmp_path / "hf"
    r = invoke("export", "hf", _tiny_run(), "-o", out)
    assert r.exit_code == 0, r.output
    before = snapshot(out)
    monkeypatch.setattr(export, "_write_export", broken)
    r = invoke("export", "hf", _tiny_run(), "-o", out, "--force")
    assert isinstance(r.exception, OSError) and "No space left" in str(r.exception)
    assert snapshot(out) == before  # the earlier export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hf.export.lock", "hf"]

def _shard_folder(made: Path) -> Path:
    """tiny_shards' files in a folder of their own (the fixture writes them into tmp_path itself)."""
    shards = made / "shards"
    shards.mkdir()
    for name in ("manifest.json", "tokenizer.json", "train-00000.arrow", "val-00000.arrow"):
        shutil.copyfile(made / name, shards / name)
    return shards


@pytest.mark.parametrize("into", ["user_folder", "shards"])
def test_train_slurm_writes_no_script_into_a_folder_the_run_could_not_own(invoke, user_folder, tiny_shards, into):
    """``train --slurm`` writes OUT/slurm/ long before the run claims OUT: the same check comes first."""
    shards = _shard_folder(tiny_shards[0])
    out, why = {"user_folder": (user_folder, "is not empty and holds no gristmill train output"),
                "shards": (shards, "is also an input")}[into]
    before = snapshot(out)
    for dry_run in (("--dry-run",), ()):  # refused before sbatch is looked for, too
        r = invoke("train", "--data", shards, "-o", out, "--model", "tiny", "--slurm", *dry_run)
        one_line_error(r, 2, str(out), why)
    assert snapshot(out) == before and not (out / "slurm").exists()


def test_train_slurm_into_its_own_run_folder_is_accepted(invoke, tiny_shards, tmp_path):
    shards, run = _shard_folder(tiny_shards[0]), tmp_path / "run"
    for _ in range(2):  # the second time the folder holds only the first one's slurm/
        r = invoke("train", "--data", shards, "-o", run, "--model", "tiny", "--slurm", "--dry-run")
        assert r.exit_code == 0, r.output
    assert (run / "slurm" / "train.sbatch").is_file()


def test_run_slurm_refuses_a_training_folder_that_is_not_the_runs(tmp_path):
    from gristmill.pipelines.spec import load_pipeline
    from gristmill.pipelines.submit import submit_pipeline

    pipe = load_pipeline(Path(__file__).parents[2] / "pipelines" / "demo.toml", root=tmp_path / "out")
    train_dir = pipe.layout.dir("train")
    train_dir.mkdir(parents=True)
    (train_dir / "thesis.tex").write_text("mine")
    with pytest.raises(GristmillError, match="is not empty and holds no gristmill train output"):
        submit_pipeline(pipe, dry_run=True, workdir=tmp_path, say=lambda m: None)
    assert snapshot(train_dir) == {"thesis.tex": b"mine"} and not (pipe.layout.root / "slurm").exists()


def test_demo_never_overwrites_a_pipeline_toml_it_did_not_write_or_that_was_edited(invoke, tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    mine = root / "pipeline.toml"
    mine.write_text("# my own pipeline\n[pipeline]\nroot = \".\"\n")
    for args in ((), ("--dry-run",)):
        r = invoke("demo", "-o", root, *args)
        one_line_error(r, 2, f"{mine} exists and is not the demo pipeline as gristmill wrote it",
                       f"gristmill run {mine}")
        assert mine.read_text() == "# my own pipeline\n[pipeline]\nroot = \".\"\n"

    mine.unlink()
    assert invoke("demo", "-o", root, "--dry-run").exit_code == 0  # writes its own copy
    written = mine.read_text()
    assert written.startswith("# written by `gristmill demo` (sha256 ")
    assert invoke("demo", "-o", root, "--dry-run").exit_code == 0  # its own copy, unchanged
    edited = written.replace("vocab_size = 4096", "vocab_size = 2048")
    assert edited != written
    mine.write_text(edited)
    one_line_error(invoke("demo", "-o", root, "--dry-run"), 2, "(another file, or an edited copy)")
    assert mine.read_text() == edited


def test_demo_rewrites_an_unedited_copy_from_another_install(invoke, tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    old = '[pipeline]\nroot = "."\ninputs = ["/old/venv/gristmill/data/demo"]\n'
    stamp = f"# written by `gristmill demo` (sha256 {hashlib.sha256(old.encode()).hexdigest()}): old wording\n"
    (root / "pipeline.toml").write_text(stamp + old)
    assert invoke("demo", "-o", root, "--dry-run").exit_code == 0
    assert "/old/venv" not in (root / "pipeline.toml").read_text()


def test_report_replaces_only_an_earlier_report(invoke, corpus, tmp_path):
    root = corpus.parent
    page = tmp_path / "site" / "index.html"
    page.parent.mkdir()
    page.write_text("<!DOCTYPE html><html><head><title>my homepage</title></head></html>\n")
    link = tmp_path / "site" / "link.html"
    link.symlink_to(page)
    for out in (page, link):
        one_line_error(invoke("report", root, "-o", out), 2, f"{out} exists and is not a gristmill report")
    assert page.read_text().startswith("<!DOCTYPE html><html><head><title>my homepage")

    report = tmp_path / "report.html"
    assert invoke("report", root, "-o", report).exit_code == 0
    first = report.read_bytes()
    report.write_bytes(first.replace(b"</body>", b"<p>stale</p></body>"))
    assert invoke("report", root, "-o", report).exit_code == 0  # an earlier report: replaced
    assert b"stale" not in report.read_bytes()


def _users_png(path: Path) -> bytes:
    """A real PNG of the user's own (matplotlib's default text, no gristmill marker)."""
    from matplotlib.figure import Figure

    Figure(figsize=(1, 1)).savefig(path, format="png")
    return path.read_bytes()


def test_inspect_plot_replaces_only_its_own_png(invoke, tmp_path):
    """--plot FILE: a user's PNG or a link at FILE is refused (the link's target unchanged); a
    PNG an earlier --plot wrote is replaced."""
    mine, thesis = tmp_path / "figure.png", tmp_path / "thesis.tex"
    mine_bytes = _users_png(mine)
    thesis.write_text("years of work\n")
    link = tmp_path / "link.png"
    link.symlink_to(thesis)
    for out, why in ((mine, "(no gristmill marker)"), (link, "(a link)")):
        r = invoke("inspect", "attention", _tiny_run(), "To be, or not", "--plot", out)
        one_line_error(r, 2, f"{out} exists and is not a PNG gristmill wrote {why}", "choose another name")
    assert mine.read_bytes() == mine_bytes and link.is_symlink() and thesis.read_text() == "years of work\n"

    ours = tmp_path / "attn.png"
    for _ in range(2):  # new, then over its own earlier plot
        r = invoke("inspect", "attention", _tiny_run(), "To be, or not", "--plot", ours)
        assert r.exit_code == 0, r.output
    assert ours.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn.png", "figure.png", "link.png", "thesis.tex"]


def test_shards_stats_plot_folder_keeps_a_users_files(invoke, tiny_shards, user_folder):
    """--plot DIR into an existing folder: the user's files stay; a user's PNG under a plot's name
    is refused before either plot is written."""
    shards = _shard_folder(tiny_shards[0])
    before = snapshot(user_folder)
    for _ in range(2):  # new plots, then over its own
        r = invoke("shards", "stats", shards, "--plot", user_folder)
        assert r.exit_code == 0, r.output
    after = snapshot(user_folder)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["lengths.png", "zipf.png"]

    (user_folder / "lengths.png").unlink()
    mine = _users_png(user_folder / "zipf.png")
    r = invoke("shards", "stats", shards, "--plot", user_folder)
    one_line_error(r, 2, f"{user_folder / 'zipf.png'} exists and is not a PNG gristmill wrote")
    assert (user_folder / "zipf.png").read_bytes() == mine and not (user_folder / "lengths.png").exists()
    assert snapshot(user_folder) == {**before, "zipf.png": mine}


def test_shards_stats_plot_refuses_a_file_in_the_folders_place(invoke, tiny_shards, tmp_path):
    shards, out = _shard_folder(tiny_shards[0]), tmp_path / "plots"
    out.write_text("mine\n")
    r = invoke("shards", "stats", shards, "--plot", out)
    assert r.exit_code == 2 and out.read_text() == "mine\n", r.output


def test_training_keeps_a_users_loss_png_and_finishes(tmp_path, caplog):
    """The run's loss plot follows the same rule; refusing it only skips the plot, with a warning."""
    from gristmill.formats.run_metrics import METRICS
    from gristmill.train.metrics import plot_loss

    (tmp_path / METRICS).write_text("".join(f'{{"step": {s}, "loss": {3 - s / 10}}}\n' for s in range(1, 6)))
    mine = _users_png(tmp_path / "loss.png")
    with caplog.at_level("WARNING", logger="gristmill"):
        assert plot_loss(tmp_path) is None
    assert (tmp_path / "loss.png").read_bytes() == mine
    assert "loss plot not written" in caplog.text and "not a PNG gristmill wrote" in caplog.text
    (tmp_path / "loss.png").unlink()
    assert plot_loss(tmp_path) == tmp_path / "loss.png"
    assert plot_loss(tmp_path) == tmp_path / "loss.png"  # its own: replaced
