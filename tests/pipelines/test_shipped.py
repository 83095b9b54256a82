"""The pipeline files that ship: the demo (both copies) and the commented example."""

from __future__ import annotations

from pathlib import Path

from gristmill.pipelines.cli import DEMO_PIPELINE
from gristmill.pipelines.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]


def test_both_demo_files_are_the_same_pipeline(tmp_path):
    packaged = load_pipeline(DEMO_PIPELINE, root=tmp_path)
    top = load_pipeline(REPO / "pipelines" / "demo.toml", root=tmp_path)
    assert packaged.layout == top.layout
    assert packaged.configs == top.configs
    assert packaged.layout.inputs[0].name == "demo-corpus.jsonl.gz" and packaged.layout.inputs[0].is_file()
    assert "clean" in packaged.layout.stages and packaged.configs["clean"].profile == "books"
    assert not packaged.configs["clean"].c4.enabled  # the profile applies through the pipeline file


def test_example_pipeline_is_valid_once_pointed_at_real_paths(tmp_path):
    (tmp_path / "raw").mkdir()
    text = (REPO / "pipelines" / "example.toml").read_text()
    text = text.replace('root = "/data/gristmill/web-en"', f'root = "{tmp_path / "out"}"')
    text = text.replace('inputs = ["/data/raw/crawl-2024-10/"]', f'inputs = ["{tmp_path / "raw"}"]')
    p = tmp_path / "example.toml"
    p.write_text(text)
    pipe = load_pipeline(p)
    assert [s.name for s in pipe.stages] == ["ingest", "clean", "dedup", "tokenizer", "shards", "train"]
    assert pipe.configs["clean"].lang.languages == ("en",)
    assert pipe.configs["train"].model == "small" and pipe.configs["tokenizer"].vocab_size == 32768
    assert pipe.slurm.nodes == 2 and pipe.slurm.gpus_per_node == 8
    assert pipe.layout.dir("clean") == tmp_path / "out" / "02-clean"
