"""``gristmill ablate``: the same model trained on each arm of a data pipeline, compared on one
held-out text in bits per byte (which does not depend on the tokenizer).

Arms run one after another through the ordinary runner, so a stage folder two arms share
(see :mod:`gristmill.pipelines.ablate_spec`) is computed once and a rerun resumes where it
stopped. Each arm's model is then measured on the common held-out text with
:func:`gristmill.train.inspect_compression.model_bits` (training's bpb definition).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.manifest import atomic_write_json, read_manifest
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


def run_ablation(abl: Ablation, say: Say = log.info) -> list[dict[str, Any]]:
    """Run every arm, measure each on the held-out text, write ablate/results.{json,txt} and bpb.png."""
    rows = []
    for name, pipe in abl.arms.items():
        say(f"arm {name}: {' -> '.join(pipe.layout.stages)}")
        run_pipeline(pipe, say=say)
        rows.append(_measure(abl, name))
    abl.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(abl.out / "results.json", {"heldout": str(abl.section.heldout), "arms": rows})
    (abl.out / "results.txt").write_text(format_table(rows) + "\n", encoding="utf-8")
    plot_arms(abl, rows, abl.out / "bpb.png")
    return rows


def _measure(abl: Ablation, name: str) -> dict[str, Any]:
    from gristmill.train.inspect_compression import load_documents, model_bits
    from gristmill.train.metrics import MetricsLog
    from gristmill.train.run import load_run

    pipe = abl.arms[name]
    run_dir, shards = pipe.layout.dir("train"), pipe.layout.dir("shards")
    run = load_run(run_dir)
    docs, _ = load_documents(run, abl.section.heldout, abl.section.max_bytes)
    bits = model_bits(run, docs)
    recs = list(MetricsLog.read(run_dir / "metrics.jsonl"))
    steps = [r for r in recs if "tokens_per_s" in r]
    splits = (read_manifest(shards) or {}).get("totals", {}).values()  # train + val: all the arm kept
    totals = {k: sum(int(t.get(k, 0)) for t in splits) for k in ("docs", "tokens")}
    return {"arm": name, "stages": list(pipe.layout.stages), "tokens": steps[-1]["tokens"] if steps else 0,
            "heldout_bpb": bits.bpb, "heldout_bytes": bits.bytes,
            "tokens_per_s": (sum(r["tokens_per_s"] for r in steps) / len(steps)) if steps else math.nan,
            "docs_kept": totals.get("docs"), "tokens_kept": totals.get("tokens"),
            "val_curve": [[r["step"], r["val_bpb"]] for r in recs if r.get("val_bpb") is not None],
            "run": str(run_dir)}


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'arm':<14} {'train tokens':>13} {'held-out bpb':>13} {'tokens/s':>10} {'docs kept':>10} "
             f"{'tokens kept':>12}"]
    for r in rows:
        lines.append(f"{r['arm']:<14} {r['tokens']:>13,} {r['heldout_bpb']:>13.4f} {r['tokens_per_s']:>10,.0f} "
                     f"{r['docs_kept'] or 0:>10,} {r['tokens_kept'] or 0:>12,}")
    return "\n".join(lines)


def plot_arms(abl: Ablation, rows: list[dict[str, Any]], out: Path) -> None:
    """Each arm's own val-split bpb along training (a line) and its held-out bpb at the end (a star)."""
    from gristmill.train.inspect import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    batch_tokens = {name: pipe.configs["train"].batch_tokens for name, pipe in abl.arms.items()}
    for r in rows:
        xs = [s * batch_tokens[r["arm"]] for s, _ in r["val_curve"]]
        line, = ax.plot(xs, [b for _, b in r["val_curve"]], marker="o", label=f"{r['arm']} (own val split)")
        ax.plot([r["tokens"]], [r["heldout_bpb"]], marker="*", markersize=14, color=line.get_color(),
                linestyle="none", label=f"{r['arm']}: held-out {r['heldout_bpb']:.3f}")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("bits per byte")
    ax.set_title(f"ablation {abl.path.name}: held-out {abl.section.heldout.name}")
    ax.legend(fontsize=8)
    _save(fig, out)
