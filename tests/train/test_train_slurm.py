"""``gristmill train --slurm``: the batch script for exactly this training command."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.train.cli import train
from tests.expect import one_line_error


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, path: str | None = None):
    if path is not None:
        monkeypatch.setenv("PATH", path)
    return CliRunner().invoke(train, args)


def _srun_line(script: str) -> str:
    lines = script.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("srun "))
    return lines[i] + "\n" + lines[i + 1]


def test_dry_run_writes_and_prints_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "my run"  # a space: arguments must be quoted in the script
    result = _invoke(["--data", "web=shards/web:0.7", "--data", "code=shards/code:0.3", "-o", str(run),
                      "--model", "small", "--seq-len", "1024", "--max-steps", "5000", "--no-compile",
                      "--doc-aligned", "--slurm", "--dry-run", "--nodes", "4", "--gpus-per-node", "8",
                      "--time", "2-00:00:00", "--partition", "gpu"], monkeypatch)
    assert result.exit_code == 0, result.output
    script_path = run / "slurm" / "train.sbatch"
    text = script_path.read_text()
    assert result.stdout == text
    assert subprocess.run(["bash", "-n", str(script_path)]).returncode == 0
    for directive in ("--nodes=4", "--gpus-per-node=8", "--time=2-00:00:00", "--partition=gpu",
                      f"--output={run.resolve()}/slurm/logs/%x-%j.out"):
        assert f"#SBATCH {directive}\n" in text
    srun = _srun_line(text)
    for part in ("torchrun --nnodes $SLURM_NNODES", "--nproc-per-node 8", "--rdzv-backend c10d",
                 "--rdzv-endpoint $MASTER_ADDR:29500"):
        assert part in srun
    # the user's training arguments, in order, and none of the Slurm-only ones
    cmd = shlex.split(srun.split("\\\n", 1)[1].replace("$RESUME &", ""))
    assert cmd == ["-m", "gristmill", "train", "--data", "web=shards/web:0.7", "--data", "code=shards/code:0.3",
                   "--out", str(run), "--model", "small", "--seq-len", "1024", "--max-steps", "5000",
                   "--no-compile", "--doc-aligned"]
    assert f"cd {shlex.quote(str(tmp_path))}" in text
    assert "wrote" in result.stderr and "sbatch --parsable" in result.stderr


def test_slurm_table_of_config_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "train.toml"
    conf.write_text('[train]\nmodel = "tiny"\n[slurm]\nnodes = 2\ngpus_per_node = 4\naccount = "lab"\n'
                    'rdzv_port = 29600\n')
    run = tmp_path / "run"
    result = _invoke(["--data", "shards", "-o", str(run), "--config", str(conf), "--slurm", "--dry-run",
                      "--nodes", "3", "--json"], monkeypatch)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {"script": str(run / "slurm" / "train.sbatch"), "job_id": None}
    text = Path(out["script"]).read_text()
    assert "#SBATCH --nodes=3\n" in text and "#SBATCH --gpus-per-node=4\n" in text
    assert "#SBATCH --account=lab\n" in text
    assert "--rdzv-endpoint $MASTER_ADDR:29600" in text
    assert f"--config {conf}" in _srun_line(text)


def test_no_sbatch_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _invoke(["--data", "shards", "-o", str(tmp_path / "run"), "--slurm"], monkeypatch, path=str(empty))
    one_line_error(result, 2, "sbatch not found")
    assert len(result.output.strip().splitlines()) == 1


def test_submits_with_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "sbatch-args"
    fake = bindir / "sbatch"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\necho "4242;cluster"\n')
    fake.chmod(0o755)
    run = tmp_path / "run"
    result = _invoke(["--data", "shards", "-o", str(run), "--max-steps", "10", "--slurm", "--gpus-per-node", "0"],
                     monkeypatch, path=f"{bindir}:/usr/bin:/bin")
    assert result.exit_code == 0, result.output
    assert "Slurm job 4242" in result.stderr
    script = run.resolve() / "slurm" / "train.sbatch"
    assert record.read_text().split() == ["--parsable", str(script)]
    text = script.read_text()
    assert "--nproc-per-node 1" in text and "--gpus-per-node" not in text.split("srun")[0]


@pytest.mark.parametrize("extra, needle", [
    (["--slurm", "--force"], "--force cannot be passed"),
    (["--slurm", "--resume"], "--resume cannot be passed"),
    (["--slurm", "--time", "soon"], "time must be a Slurm time"),
    (["--dry-run"], "need --slurm"),
])
def test_bad_combinations_are_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          extra: list[str], needle: str) -> None:
    result = _invoke(["--data", "shards", "-o", str(tmp_path / "run"), *extra], monkeypatch)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not (tmp_path / "run" / "slurm" / "train.sbatch").exists()

