"""``gristmill run --slurm`` (``submit_pipeline``) refuses a run folder before writing ROOT/slurm/,
checking exactly the inputs the training stage will fingerprint (the registry's ``stage_inputs``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gristmill.errors import GristmillError
from gristmill.pipelines.spec import load_pipeline
from gristmill.pipelines.submit import submit_pipeline

DEMO = Path(__file__).parents[2] / "pipelines" / "demo.toml"
CORPUS = Path(__file__).parents[2] / "gristmill" / "data" / "demo" / "demo-corpus.jsonl.gz"


def _pipeline(tmp_path: Path, mixture_path: Path):
    """The demo pipeline under tmp_path, training on a one-source ``data.mixture`` at ``mixture_path``."""
    root = tmp_path / "out"
    text = DEMO.read_text().replace('root = "../demo-output"', f'root = "{root}"')
    text = text.replace('inputs = ["../gristmill/data/demo/demo-corpus.jsonl.gz"]', f'inputs = ["{CORPUS}"]')
    text += f'\n[[train.data.mixture]]\nname = "web"\npath = "{mixture_path}"\n'
    p = tmp_path / "pipeline.toml"
    p.write_text(text)
    return load_pipeline(p)


@pytest.mark.parametrize(("where", "message"), [
    ("the run folder", "is also an input"),
    ("inside the run folder", "holds the input"),
    ("above the run folder", "is inside the input"),
])
def test_a_mixture_source_overlapping_the_run_folder_is_refused(tmp_path, where, message):
    run = tmp_path / "out" / "06-train"
    source = {"the run folder": run, "inside the run folder": run / "shards",
              "above the run folder": tmp_path / "out"}[where]
    pipe = _pipeline(tmp_path, source)
    assert pipe.layout.dir("train") == run
    with pytest.raises(GristmillError, match=message):
        submit_pipeline(pipe, dry_run=True, workdir=tmp_path, say=lambda m: None)
    assert not (tmp_path / "out" / "slurm").exists()  # refused before any script was written


def test_a_mixture_source_elsewhere_is_submitted(tmp_path):
    pipe = _pipeline(tmp_path, tmp_path / "shards" / "web")
    jobs = submit_pipeline(pipe, dry_run=True, workdir=tmp_path, say=lambda m: None)
    assert [j.kind for j in jobs] == ["data", "train"]
    assert all(j.script.is_file() for j in jobs)
