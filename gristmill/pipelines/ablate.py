"""``gristmill ablate``: the same model trained on each arm of a data pipeline, compared on one
held-out text in bits per byte (which does not depend on the tokenizer).

Arms run one after another through the ordinary runner, so a stage folder two arms share
(see :mod:`gristmill.pipelines.ablate_spec`) is computed once and a rerun resumes where it
stopped. Each arm's checkpoints are then measured on the common held-out text
(:mod:`gristmill.pipelines.ablate_measure`), given by the user or carved out of the raw input
(:mod:`gristmill.pipelines.ablate_heldout`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gristmill.formats.ablation import AblationResults, ArmResult, write_results
from gristmill.manifest import atomic_write_bytes
from gristmill.pipelines.ablate_heldout import write_carved
from gristmill.pipelines.ablate_measure import measure_arm
from gristmill.pipelines.ablate_spec import Ablation
from gristmill.pipelines.runner import plan, run_pipeline

log = logging.getLogger(__name__)
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PlannedStage:
    folder: Path
    arms: tuple[str, ...]   # every arm that uses this folder
    action: str             # "run" or "up to date"


def dry_run(abl: Ablation) -> list[PlannedStage]:
    """Each distinct stage folder once, with the arms sharing it and whether it would run."""
    seen: dict[Path, tuple[list[str], str]] = {}
    for name, pipe in abl.arms.items():
        for step in plan(pipe):
            folder = pipe.layout.dir(step.spec.name)
            arms, action = seen.setdefault(folder, ([], "run" if step.action == "run" else "up to date"))
            arms.append(name)
    return [PlannedStage(f, tuple(a), act) for f, (a, act) in seen.items()]


def format_plan(stages: list[PlannedStage]) -> str:
    lines = []
    for s in stages:
        share = f"shared by {', '.join(s.arms)}" if len(s.arms) > 1 else f"arm {s.arms[0]}"
        lines.append(f"{s.action:<10} {s.folder.name:<28} {share}")
    return "\n".join(lines)


def run_ablation(abl: Ablation, say: Say = log.info) -> AblationResults:
    """Run every arm, measure each on the held-out text, write ablate/results.{json,txt} and bpb.png."""
    for name, pipe in abl.arms.items():
        say(f"arm {name}: {' -> '.join(pipe.layout.stages)}")
        run_pipeline(pipe, say=say)
    if abl.carved:  # every arm starts with the same ingest: it held the documents out
        n = write_carved(next(iter(abl.arms.values())).layout.dir("ingest"), abl.heldout)
        say(f"held-out text: {n:,} documents carved out of the raw input into {abl.heldout}")
    arms = tuple(measure_arm(name, pipe, abl.heldout, abl.section.max_bytes, abl.out / "arms", say)
                 for name, pipe in abl.arms.items())
    results = AblationResults(heldout=str(abl.heldout), carved=abl.carved, arms=arms)
    write_results(abl.out.parent, results)  # abl.out is ROOT/ablate
    atomic_write_bytes(abl.out / "results.txt", (format_table(arms) + "\n").encode("utf-8"))
    plot_arms(abl, arms, abl.out / "bpb.png")
    return results


def format_table(arms: tuple[ArmResult, ...]) -> str:
    """One line per arm and checkpoint: held-out bpb at that many training tokens."""
    lines = [f"{'arm':<14} {'tokens':>11} {'val bpb':>8} {'tokens/s':>9} {'docs kept':>10} {'tokens kept':>12}"]
    for a in arms:
        for tokens, bpb in [(p.tokens, p.bpb) for p in a.curve] or [(a.tokens, a.heldout_bpb)]:
            lines.append(f"{a.arm:<14} {tokens:>11,} {bpb:>8.4f} {a.tokens_per_s:>9,.0f} "
                         f"{a.docs_kept:>10,} {a.tokens_kept:>12,}")
    return "\n".join(lines)


def plot_arms(abl: Ablation, arms: tuple[ArmResult, ...], out: Path) -> None:
    """Held-out bpb against training tokens, one line per arm (the report draws the same figure)."""
    from gristmill.report.ablation import ablation_figure
    from gristmill.infra.plots import save_png

    held = "a held-out set carved out of the input" if abl.carved else f"held-out {abl.heldout.name}"
    fig = ablation_figure(arms, f"ablation {abl.path.name}: {held}")
    buf = io.BytesIO()
    save_png(fig, buf)
    atomic_write_bytes(out, buf.getvalue())
