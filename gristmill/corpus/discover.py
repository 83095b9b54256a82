"""Which files ``corpus ingest`` reads under its inputs, and which it skips (always with a reason).

Policy (docs: README, "Reading raw dumps"):

- An input named on the command line is read, even if it is a symlink: the user chose it.
- Inside an input folder, a symlink is followed only if it resolves inside that folder, and
  every real file is read once: a link to a file the walk reaches anyway, or to a folder
  (whose files the walk reaches as themselves), is skipped as ``symlink_duplicate``; a link
  leading out of the folder is ``symlink_outside_input``; a dangling one ``broken_symlink``.
- Hidden files and folders (``.git``, editor swap files) are ``hidden``; a hidden folder is
  one entry.
- A ``datasets.Dataset.save_to_disk`` folder (a ``state.json`` listing ``_data_files``) is read
  as the files it lists, in its order; a listed file that is missing stops ingest (exit 2);
  any other file in it is ``not_in_state_json`` (``dataset_info.json`` and ``state.json`` are
  its metadata, not data).

Every skip is an entry ``{path, reason}`` in the manifest's ``skipped_inputs`` and is logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from gristmill.errors import InputError

log = logging.getLogger(__name__)

_DATASET_META = frozenset({"state.json", "dataset_info.json"})


def discover(inputs: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[dict[str, str]]]:
    """Input files with the path to show for them, and the skipped paths with their reasons."""
    found: list[tuple[Path, str]] = []
    skipped: list[dict[str, str]] = []
    for root in inputs:
        if not root.exists():
            raise InputError(f"input not found: {root}")
        if root.is_file():
            found.append((root, root.name))
            continue
        _walk(root, root.resolve(), root.name, found, skipped, set())
    for reason in sorted({s["reason"] for s in skipped}):
        n = sum(s["reason"] == reason for s in skipped)
        log.warning("ingest: skipped %d inputs: %s (listed in the manifest's skipped_inputs)", n, reason)
    if not found:
        raise InputError(f"no input files under {', '.join(map(str, inputs))}")
    return found, skipped


def _walk(folder: Path, top: Path, shown: str, found: list[tuple[Path, str]],
          skipped: list[dict[str, str]], seen: set[Path]) -> None:
    """Depth-first, in name order, so the file order (and the output) is deterministic."""
    listed = _dataset_files(folder, shown)
    if listed is not None:
        _dataset_folder(folder, shown, listed, found, skipped, seen)
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path, rel = Path(entry.path), f"{shown}/{entry.name}"
        if entry.name.startswith("."):
            skipped.append({"path": rel, "reason": "hidden"})
        elif entry.is_symlink():
            _link(path, rel, top, found, skipped, seen)
        elif entry.is_dir():
            _walk(path, top, rel, found, skipped, seen)
        elif entry.is_file():
            if (real := path.resolve()) not in seen:
                seen.add(real)
                found.append((path, rel))
            else:  # a link to it came first in name order; the walk reads each file once
                skipped.append({"path": _retarget(found, real, path, rel), "reason": "symlink_duplicate"})
        else:
            skipped.append({"path": rel, "reason": "not_a_regular_file"})


def _link(path: Path, rel: str, top: Path, found: list[tuple[Path, str]],
          skipped: list[dict[str, str]], seen: set[Path]) -> None:
    real = path.resolve()
    if not real.exists():
        skipped.append({"path": rel, "reason": "broken_symlink"})
    elif not real.is_relative_to(top):
        skipped.append({"path": rel, "reason": "symlink_outside_input"})
    elif real.is_dir() or real in seen:
        skipped.append({"path": rel, "reason": "symlink_duplicate"})
    else:
        seen.add(real)
        found.append((path, rel))


def _retarget(found: list[tuple[Path, str]], real: Path, path: Path, rel: str) -> str:
    """Read a file under its own name rather than through a link that sorted before it; the
    link's shown path is returned, for the caller to record as skipped."""
    for i, (p, old_rel) in enumerate(found):
        if p.resolve() == real:
            found[i] = (path, rel)
            return old_rel
    raise AssertionError(f"{rel}: seen, but found through no earlier path")


def _dataset_files(folder: Path, shown: str) -> list[str] | None:
    """The file names a ``save_to_disk`` folder's ``state.json`` lists, or None if it is not one."""
    state = folder / "state.json"
    if not state.is_file() or state.is_symlink():
        return None
    try:
        files = [d["filename"] for d in json.loads(state.read_bytes())["_data_files"]]
    except (KeyError, TypeError, ValueError):
        return None  # an ordinary file that happens to be called state.json
    bad = [f for f in files if not isinstance(f, str) or not f or "/" in f or "\\" in f or f.startswith(".")]
    if bad:
        raise InputError(f"{shown}/state.json lists {bad[0]!r}, which is not a file name in that folder")
    return files


def _dataset_folder(folder: Path, shown: str, listed: list[str], found: list[tuple[Path, str]],
                    skipped: list[dict[str, str]], seen: set[Path]) -> None:
    for name in listed:
        path, rel = folder / name, f"{shown}/{name}"
        if not path.is_file() or path.is_symlink():
            raise InputError(f"{shown}/state.json lists {name}, which is missing (or not a regular file)")
        if (real := path.resolve()) not in seen:
            seen.add(real)
            found.append((path, rel))
        else:  # a link elsewhere in the tree sorted first: read the listed file as itself, once
            skipped.append({"path": _retarget(found, real, path, rel), "reason": "symlink_duplicate"})
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name not in listed and entry.name not in _DATASET_META:
            skipped.append({"path": f"{shown}/{entry.name}", "reason": "not_in_state_json"})
