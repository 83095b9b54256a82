"""What ``gristmill demo`` shows once its pipeline has run: where everything is, and a sample."""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.config import tomllib
from gristmill.formats.stage_manifest import read_stage_manifest_or_none
from gristmill.manifest import atomic_write_bytes
from gristmill.pipelines.spec import PipelineConfig

log = logging.getLogger(__name__)

# The file a reader should open first in each stage's output.
_KEY_FILES = {"tokenizer": "tokenizer.json", "shards": "manifest.json", "train": "model.safetensors"}
_HERE = Path(__file__).parent


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoCorpus:
    """One shipped demo: its pipeline file, default output folder, and sample prompts."""

    pipeline: Path
    out: Path
    prompt: str          # the sample the demo prints
    more_prompt: str     # the one it suggests trying next

    def __post_init__(self) -> None:
        if not self.prompt or not self.more_prompt:
            raise ValueError("a demo needs non-empty prompts")


DEMOS = {
    "en": DemoCorpus(pipeline=_HERE / "demo.toml", out=Path("demo-output"), prompt="ROMEO:",
                     more_prompt="HAMLET:"),
    "zh": DemoCorpus(pipeline=_HERE / "demo-zh.toml", out=Path("demo-zh-output"), prompt="《春夜》",
                     more_prompt="明月"),
}


def write_demo_pipeline(shipped: Path, root: Path) -> Path:
    """Copy the shipped demo pipeline to ROOT/pipeline.toml, pointing at ROOT and the shipped corpus,
    so that `gristmill status|run ROOT/pipeline.toml` work on the demo and it can be edited."""
    root = root.resolve()
    shipped_text = shipped.read_text(encoding="utf-8")
    # The shipped file's inputs are relative to it; the copy lives elsewhere, so make them absolute.
    inputs = [str((shipped.parent / p).resolve()) for p in tomllib.loads(shipped_text)["pipeline"]["inputs"]]
    text, n_root = re.subn(r'(?m)^root = ".*"$', 'root = "."', shipped_text, count=1)
    text, n_inputs = re.subn(r"(?m)^inputs = \[.*\]$",
                             lambda _: f"inputs = {json.dumps(inputs, ensure_ascii=False)}", text, count=1)
    assert n_root == n_inputs == 1, "the demo pipeline's root and inputs lines have moved"
    path = root / "pipeline.toml"
    root.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_bytes(path, text.encode())
    return path


def artifacts(pipe: PipelineConfig) -> dict[str, str]:
    """Stage name -> the path of its main artifact (its directory for document datasets)."""
    out = {}
    for spec in pipe.stages:
        d = pipe.layout.dir(spec.name)
        key = _KEY_FILES.get(spec.name)
        out[spec.name] = str(d / key) if key and (d / key).exists() else str(d)
    return out


def sample(run_dir: Path, prompt: str, *, seed: int = 0, max_new_tokens: int = 120) -> str:
    """A seeded sample from the trained run (same run, prompt and seed: same text)."""
    from gristmill.train.run import load_run
    from gristmill.train.generate import SamplingConfig, generate_text

    run = load_run(run_dir)
    cfg = SamplingConfig(temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed)
    return generate_text(run, prompt, cfg)[0].text


def show_demo(pipe: PipelineConfig, *, prompt: str, more_prompt: str = "HAMLET:",
              say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Print each artifact's location, the final losses, and a generated sample."""
    paths = artifacts(pipe)
    say("")
    say("artifacts:")
    for name, path in paths.items():
        say(f"  {name:<10} {path}")
    result: dict[str, Any] = {"artifacts": paths}
    train_dir = pipe.layout.dir("train") if "train" in pipe.layout.stages else None
    if train_dir is None or read_stage_manifest_or_none(train_dir) is None:
        return result
    text = sample(train_dir, prompt)
    say("")
    say(f"sample (prompt {prompt!r}, temperature 0.8, seed 0):")
    say("")
    say(prompt + text)
    say("")
    say(f"more: gristmill generate {train_dir} --prompt {shlex.quote(more_prompt)} --temperature 0.8")
    say(f"      gristmill status {pipe.path}")
    result["sample"] = {"prompt": prompt, "text": text}
    return result
