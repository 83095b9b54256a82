"""An ablation file: a pipeline file plus ``[ablate]``, which names the arms and the held-out text.

```toml
[pipeline]            # as for `gristmill run`; stages = every stage any arm uses
[ablate]
heldout = "heldout.txt"            # a UTF-8 file, a folder of .txt files, or a shards folder (val split)
# or, instead: heldout_fraction = 0.02   (carved out of the raw input before any stage)
[ablate.arms]                      # (a TOML inline table must stay on one line)
raw = ["ingest", "tokenizer", "shards", "train"]
dedup = ["ingest", "dedup", "tokenizer", "shards", "train"]
```

``heldout_fraction`` sets ``[ingest] heldout_fraction`` in every arm: ingest sets those
documents aside (by a hash of their id; reason ``heldout``, counted in its manifest), so no
stage of any arm reads them, and the ablation copies them into ``ROOT/ablate/heldout/``.
Every arm's training must keep all its checkpoints (``[train.checkpoint] keep`` at least
``max_steps // every + 1``), so each is measured at the same training-token counts.

Every arm runs its stages with the file's stage tables. A stage's folder is named by a hash
of its own config and those of every stage before it in the arm (and the raw inputs), so two
arms with the same prefix share the folders of that prefix and the runner's up-to-date check
(config hash + input fingerprint) computes it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.config import read_toml, to_dict
from gristmill.errors import ConfigError, FieldError, GristmillError
from gristmill.pipelines.registry import Layout
from gristmill.pipelines.spec import PipelineConfig, PipelineFile, load_pipeline


@dataclass(frozen=True, kw_only=True, slots=True)
class AblateSection:
    """``[ablate]``: the arms (name -> stage list) and the common held-out text."""

    arms: dict[str, list[str]]
    heldout: Path | None = None
    heldout_fraction: float = 0.0   # > 0: carve the held-out text out of the raw input instead
    max_bytes: int = 2_000_000

    def __post_init__(self) -> None:
        # The messages name no key: the loader prefixes "FILE:LINE: [ablate] KEY:".
        if (self.heldout is None) == (self.heldout_fraction == 0.0):
            raise FieldError("heldout", "give either heldout (a file or folder) or heldout_fraction (carve it "
                             "out of the raw input), not both")
        if not 0.0 <= self.heldout_fraction <= 0.5:
            raise FieldError("heldout_fraction", f"must be in (0, 0.5], got {self.heldout_fraction}")
        if len(self.arms) < 2:
            raise FieldError("arms", "give at least two arms")
        for name, stages in self.arms.items():
            if not name.replace("-", "").replace("_", "").replace("+", "").isalnum():
                raise FieldError(f"arms.{name}", f"arm name {name!r}: letters, digits, - _ + only")
            if not stages or stages[-1] != "train":
                raise FieldError(f"arms.{name}", "the last stage must be train")
        if self.max_bytes < 1:
            raise FieldError("max_bytes", "must be at least 1")


@dataclass(frozen=True, slots=True)
class Ablation:
    path: Path
    section: AblateSection
    arms: dict[str, PipelineConfig]  # one pipeline per arm, over shared stage folders

    @property
    def out(self) -> Path:
        """Where the table and plot go: the ablation's own folder under the root."""
        return next(iter(self.arms.values())).layout.root / "ablate"

    @property
    def carved(self) -> bool:
        return self.section.heldout is None

    @property
    def heldout(self) -> Path:
        """The held-out text every arm is measured on (for a carved set: written by the ablation)."""
        return self.out / "heldout" if self.section.heldout is None else self.section.heldout


def load_ablation(path: str | Path, *, root: Path | None = None,
                  cluster_overrides: Mapping[str, Any] | None = None) -> Ablation:
    toml = read_toml(path, what="pipeline")
    path = toml.path
    base = load_pipeline(toml, root=root, cluster_overrides=cluster_overrides)  # every stage table, [pipeline]
    if "ablate" not in toml.doc:
        raise ConfigError(f"{path}: no [ablate] table: name the arms and the held-out text")
    loc = PipelineFile(toml)  # errors read "FILE:LINE: [ablate] KEY: ...", as the pipeline's do
    sect = loc.build(AblateSection, toml.doc, "ablate")
    if sect.heldout is not None:
        held = Path(sect.heldout).expanduser()
        held = held if held.is_absolute() else (path.parent / held).resolve()
        if not held.exists():
            raise loc.error("ablate", "heldout", f"not found: {held}")
        sect = dataclasses.replace(sect, heldout=held)
    base = _for_ablation(base, sect)
    arms = {name: _arm(base, name, stages) for name, stages in sect.arms.items()}
    return Ablation(path=path.resolve(), section=sect, arms=arms)


def _for_ablation(base: PipelineConfig, sect: AblateSection) -> PipelineConfig:
    """The stage configs every arm runs: ingest carving the held-out set; training must keep every checkpoint."""
    configs = dict(base.configs)
    if sect.heldout_fraction:
        for name, stages in sect.arms.items():
            if stages[0] != "ingest" or "ingest" not in configs:
                raise ConfigError(f"ablate.arms.{name}: heldout_fraction carves the held-out text in ingest, "
                                  "so every arm must start with ingest")
        configs["ingest"] = dataclasses.replace(configs["ingest"], heldout_fraction=sect.heldout_fraction)
    train = configs.get("train")
    if train is not None:  # _arm says which arm names a stage [pipeline] lacks
        ckpt = train.checkpoint
        # Every saved step, the last included. Checked, not raised here: a Slurm arm trains with
        # `gristmill train --config FILE`, which must compute the very config this arm expects.
        wanted = train.max_steps // ckpt.every + 1 if ckpt.every else 1
        if ckpt.keep < wanted:
            raise ConfigError(f"ablate: [train.checkpoint] keep = {ckpt.keep} keeps only the newest checkpoints; "
                              f"set keep = {wanted} (max_steps // every + 1) so each arm is measured at every one")
    return dataclasses.replace(base, configs=configs)


def _arm(base: PipelineConfig, name: str, stages: list[str]) -> PipelineConfig:
    order = [s.name for s in base.registry]
    for s in stages:
        if s not in base.layout.stages:
            raise ConfigError(f"ablate.arms.{name}: stage {s!r} is not in [pipeline] stages "
                              f"({', '.join(base.layout.stages)})")
    if list(stages) != [s for s in order if s in stages]:
        raise ConfigError(f"ablate.arms.{name}: stages must be distinct and in the order {', '.join(order)}")
    key: list[object] = [str(p) for p in base.layout.inputs]
    dirnames = {}
    for i, s in enumerate(stages):
        key.append([s, to_dict(base.configs[s])])
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
        dirnames[s] = f"{i + 1:02d}-{s}-{digest}"
    layout = Layout(root=base.layout.root, inputs=base.layout.inputs, stages=tuple(stages), dirnames=dirnames)
    pipe = dataclasses.replace(base, layout=layout)
    for spec in pipe.stages:
        try:
            spec.inputs(layout, spec.name)
        except GristmillError as e:  # a stage whose producer is not in this arm (anything else is a bug)
            raise ConfigError(f"ablate.arms.{name}: {e.message}") from None
    return pipe
