"""What ``gristmill demo`` shows once its pipeline has run: where everything is, and a sample."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.config import tomllib
from gristmill.errors import FieldError, GristmillError
from gristmill.formats.stage_manifest import read_stage_manifest_or_none
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.manifest import atomic_write_bytes
from gristmill.pipelines.spec import PipelineConfig

log = logging.getLogger(__name__)

# The file a reader should open first in each stage's output.
_KEY_FILES = {"tokenizer": TOKENIZER_FILE, "shards": "manifest.json", "train": "model.safetensors"}
_HERE = Path(__file__).parent
# First line of ROOT/pipeline.toml: the sha256 of the rest tells an unedited copy, which the demo may
# rewrite, from one the user edited, which it leaves alone.
_STAMP = ("# written by `gristmill demo` (sha256 {}): once edited, the demo leaves this file alone; "
          "run it with `gristmill run`\n")


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoCorpus:
    """One shipped demo: its pipeline file, default output folder, and sample prompts."""

    pipeline: Path
    out: Path
    prompt: str          # the sample the demo prints
    more_prompt: str     # the one it suggests trying next

    def __post_init__(self) -> None:
        if not self.prompt or not self.more_prompt:
            raise FieldError("prompt" if not self.prompt else "more_prompt", "a demo needs non-empty prompts")


DEMOS = {
    "en": DemoCorpus(pipeline=_HERE / "demo.toml", out=Path("demo-output"), prompt="ROMEO:",
                     more_prompt="HAMLET:"),
    "zh": DemoCorpus(pipeline=_HERE / "demo-zh.toml", out=Path("demo-zh-output"), prompt="《春夜》",
                     more_prompt="明月"),
}


def write_demo_pipeline(shipped: Path, root: Path) -> Path:
    """Copy the shipped demo pipeline to ROOT/pipeline.toml, pointing at ROOT and the shipped corpus,
    so that `gristmill status|run ROOT/pipeline.toml` work on the demo and it can be edited.

    An unedited copy (its first line holds the sha256 of the rest) is rewritten; any other file
    there - a user's, or a copy they edited - is refused (GristmillError), even with --dry-run.
    """
    root = root.resolve()
    shipped_text = shipped.read_text(encoding="utf-8")
    # The shipped file's inputs are relative to it; the copy lives elsewhere, so make them absolute.
    inputs = [str((shipped.parent / p).resolve()) for p in tomllib.loads(shipped_text)["pipeline"]["inputs"]]
    text, n_root = re.subn(r'(?m)^root = ".*"$', 'root = "."', shipped_text, count=1)
    text, n_inputs = re.subn(r"(?m)^inputs = \[.*\]$",
                             lambda _: f"inputs = {json.dumps(inputs, ensure_ascii=False)}", text, count=1)
    assert n_root == n_inputs == 1, "the demo pipeline's root and inputs lines have moved"
    data = _stamped(text)
    path = root / "pipeline.toml"
    if path.exists() or path.is_symlink():
        old = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        if old == data:
            return path
        legacy = old == text.encode()  # an unedited copy written before copies were stamped
        if old is None or not (legacy or _unedited_copy(old)):  # a user's file, or an edited copy: theirs
            raise GristmillError(f"{path} exists and is not the demo pipeline as gristmill wrote it (another "
                                 f"file, or an edited copy); run it with `gristmill run {path}`, or choose another -o")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)  # absent, or an unedited copy from another install or version
    return path


def _stamped(text: str) -> bytes:
    """``text`` under a first line holding its sha256: the mark of a copy nobody has edited."""
    return (_STAMP.format(hashlib.sha256(text.encode()).hexdigest()) + text).encode()


def _unedited_copy(data: bytes) -> bool:
    first, _, rest = data.partition(b"\n")
    m = re.fullmatch(rb"# written by `gristmill demo` \(sha256 ([0-9a-f]{64})\)[^\n]*", first)
    return m is not None and m.group(1).decode() == hashlib.sha256(rest).hexdigest()


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
