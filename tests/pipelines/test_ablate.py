"""gristmill ablate: arms share a prefix computed once, the held-out text (given, or carved out of
the raw input) stays out of every arm's shards, each checkpoint's held-out bpb equals a plain
cross-entropy over the model's logits, and a rerun runs only what is unfinished."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import ConfigError
from gristmill.pipelines.ablate import dry_run, run_ablation
from gristmill.corpus.ingest import is_heldout
from gristmill.pipelines.ablate_measure import load_checkpoint_weights
from gristmill.pipelines.ablate_spec import _arm, load_ablation
from gristmill.pipelines.spec import load_pipeline
from gristmill.train.checkpoint import step_dir
from gristmill.train.run import load_run
from tests.pipelines.fakes import FAKE_STAGES
from tests.pipelines.pipeline_files import write_ablation


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate")
    abl = load_ablation(write_ablation(tmp))
    said: list[str] = []
    rows = run_ablation(abl, say=said.append).arms
    return abl, rows, said


def test_shared_prefix_runs_once(done):
    abl, _, said = done
    raw, dedup = abl.arms["raw"].layout, abl.arms["dedup"].layout
    assert raw.dir("ingest") == dedup.dir("ingest")
    assert raw.dir("tokenizer") != dedup.dir("tokenizer")  # after dedup the inputs differ
    assert [s for s in said if s.startswith("ingest: ")][0].startswith("ingest: running")
    assert sum(s.startswith("ingest: running") for s in said) == 1
    assert sum(s.startswith("ingest: up to date") for s in said) == 1
    ingests = [d for d in abl.out.parent.iterdir() if "-ingest-" in d.name]
    assert ingests == [raw.dir("ingest")] and (ingests[0] / "manifest.json").is_file()


def test_heldout_never_reaches_the_shards(done):
    abl, _, _ = done
    held = {p.read_text(encoding="utf-8") for p in abl.section.heldout.glob("*.txt")}
    for pipe in abl.arms.values():
        run = load_run(pipe.layout.dir("train"))
        for f in pipe.layout.dir("shards").glob("*.arrow"):
            with pa.memory_map(str(f)) as src:
                for batch in pa.ipc.open_stream(src):
                    for ids in batch.column("input_ids").to_pylist():
                        text = run.decode([i for i in ids if i != run.eos_id])
                        assert not any(h[:200] in text for h in held)


def _bits(run, ids: list[int]) -> float:
    total, ctx = 0.0, run.config.max_seq_len
    with torch.no_grad():
        for s in range(0, len(ids) - 1, ctx):
            x = ids[s:min(s + ctx, len(ids) - 1)]
            logits, _ = run.model(torch.tensor([x]))
            y = torch.tensor(ids[s + 1:s + 1 + len(x)])
            total += float(torch.nn.functional.cross_entropy(logits[0].float(), y, reduction="sum"))
    return total / math.log(2)


def test_heldout_bpb_equals_cross_entropy_on_logits(done):
    abl, rows, _ = done
    texts = [p.read_text(encoding="utf-8") for p in sorted(abl.section.heldout.glob("*.txt"))]
    nbytes = sum(len(t.encode()) for t in texts)
    assert [r.arm for r in rows] == ["raw", "dedup"]
    for r in rows:
        assert [(p.step, p.tokens) for p in r.curve] == [(3, 3 * 128), (6, 6 * 128)]
        run = load_run(r.run)  # model.safetensors: the final weights
        final = sum(_bits(run, [run.eos_id, *run.encode(t), run.eos_id]) for t in texts)
        assert r.heldout_bytes == nbytes and r.tokens == 6 * 128
        assert r.heldout_bpb == r.curve[-1].bpb == pytest.approx(final / nbytes, rel=1e-5)
        load_checkpoint_weights(run, step_dir(run.path, 3))
        early = sum(_bits(run, [run.eos_id, *run.encode(t), run.eos_id]) for t in texts)
        assert r.curve[0].bpb == pytest.approx(early / nbytes, rel=1e-5)
        assert early != pytest.approx(final, rel=1e-4)  # the step-3 weights really were loaded


def test_last_checkpoint_holds_the_exported_weights(done):
    _, rows, _ = done
    exported = load_run(rows[0].run)
    run = load_run(rows[0].run)
    load_checkpoint_weights(run, step_dir(run.path, 6))
    ours, theirs = run.model.state_dict(), exported.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def _shard_tokens(shards: Path) -> int:
    total = 0
    for f in shards.glob("*.arrow"):
        with pa.memory_map(str(f)) as src:
            total += sum(len(ids) for b in pa.ipc.open_stream(src) for ids in b.column("input_ids").to_pylist())
    return total


def test_table_plot_and_kept_counts(done):
    abl, rows, _ = done
    by = {r.arm: r for r in rows}
    assert (by["raw"].docs_kept, by["dedup"].docs_kept) == (15, 12)  # dedup dropped the three copies
    for name, pipe in abl.arms.items():
        assert by[name].tokens_kept == _shard_tokens(pipe.layout.dir("shards")) > 0
    saved = json.loads((abl.out / "results.json").read_text())
    assert [a["heldout_bpb"] for a in saved["arms"]] == [r.heldout_bpb for r in rows]
    assert saved["carved"] is False and saved["format_version"] == 1
    lines = (abl.out / "results.txt").read_text().splitlines()
    assert lines[0].split() == ["arm", "tokens", "val", "bpb", "tokens/s", "docs", "kept", "tokens", "kept"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["raw", "384"], ["raw", "768"], ["dedup", "384"],
                                                    ["dedup", "768"]]
    assert lines[2].split()[2] == f"{by['raw'].heldout_bpb:.4f}"
    assert lines[4].split()[4:] == ["12", f"{by['dedup'].tokens_kept:,}"]
    assert (abl.out / "bpb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_is_up_to_date_and_dry_run_says_so(done):
    abl, _, _ = done
    assert {s.action for s in dry_run(abl)} == {"up to date"}
    r = CliRunner().invoke(cli, ["ablate", str(abl.path), "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 8 and all(ln.startswith("up to date") for ln in lines)
    assert lines[0].endswith("shared by raw, dedup") and "-ingest-" in lines[0]


def test_dry_run_before_anything_ran(tmp_path):
    r = CliRunner().invoke(cli, ["ablate", str(write_ablation(tmp_path)), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    stages = json.loads(r.stdout)["stages"]
    assert len(stages) == 1 + 3 + 4  # ingest shared; raw's 3 and dedup's 4 others
    assert stages[0]["arms"] == ["raw", "dedup"] and {s["action"] for s in stages} == {"run"}
    assert not (tmp_path / "out").exists()


def test_bad_arm_is_one_line(tmp_path):
    p = write_ablation(tmp_path, dedup='["ingest", "train"]')
    with pytest.raises(ConfigError, match="ablate.arms.dedup: stage 'train' needs stage 'shards' before it"):
        load_ablation(p)
    r = CliRunner().invoke(cli, ["ablate", str(p)])
    assert r.exit_code == 2
    assert r.output.strip() == "Error: ablate.arms.dedup: stage 'train' needs stage 'shards' before it"


def test_an_arm_a_stage_cannot_run_in_is_a_config_error_but_a_bug_is_not(tmp_path):
    # Only the project's own errors become "ablate.arms.NAME" errors; a bug keeps its traceback.
    (tmp_path / "in.txt").write_text("hello\n")
    (tmp_path / "p.toml").write_text('[pipeline]\ninputs = ["in.txt"]\n')
    base = load_pipeline(tmp_path / "p.toml", registry=FAKE_STAGES)
    with pytest.raises(ConfigError) as e:
        _arm(base, "short", ["case"])
    assert e.value.message == "ablate.arms.short: stage 'case' needs a stage before it"

    def broken(layout, stage):
        raise KeyError("a bug")
    buggy = dataclasses.replace(base, registry=(dataclasses.replace(FAKE_STAGES[0], inputs=broken),
                                                *FAKE_STAGES[1:]))
    with pytest.raises(KeyError, match="a bug"):
        _arm(buggy, "full", ["read", "case"])


def test_report_shows_the_ablation(done, tmp_path):
    abl, rows, _ = done
    out = tmp_path / "report.html"
    r = CliRunner().invoke(cli, ["report", str(abl.out.parent), "-o", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    section = html[html.index("<h2>Ablation</h2>"):html.index("<h2>Stages found</h2>")]
    assert section.count("<tr>") == 1 + 4  # header, two arms x two checkpoints
    for row in rows:
        assert f'<td class="">{row.arm}</td><td class="n">768</td><td class="n">{row.heldout_bpb:,.3f}' \
            in section
    assert 'src="data:image/png;base64,' in section


def test_report_skips_a_broken_results_file(tmp_path):
    from gristmill.report.ablation import read_results

    (tmp_path / "ablate").mkdir()
    (tmp_path / "ablate" / "results.json").write_text('{"arms": "x"}', encoding="utf-8")
    assert read_results(tmp_path) is None
    (tmp_path / "ablate" / "results.json").write_text("{not json", encoding="utf-8")
    assert read_results(tmp_path) is None


def test_too_few_kept_checkpoints_is_one_line(tmp_path):
    p = write_ablation(tmp_path)
    p.write_text(p.read_text().replace("keep = 3", "keep = 2"), encoding="utf-8")
    r = CliRunner().invoke(cli, ["ablate", str(p), "--dry-run"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert r.output.strip() == ("Error: ablate: [train.checkpoint] keep = 2 keeps only the newest checkpoints; "
                                "set keep = 3 (max_steps // every + 1) so each arm is measured at every one")


def test_slurm_after_a_finished_run_submits_only_the_measuring(done, tmp_path, fake_sbatch):
    from gristmill.pipelines.ablate_slurm import submit_ablation

    abl, _, _ = done
    jobs = submit_ablation(abl, workdir=tmp_path, say=lambda m: None)
    assert [(j.kind, j.job_id) for j in jobs] == [("measure", "101")]
    assert fake_sbatch.read_text().split() == ["--parsable", str(abl.out / "slurm" / "measure.sbatch")]
