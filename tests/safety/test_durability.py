"""Outputs reach the disk before their names do, and the manifest is the last thing written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from gristmill.manifest import Counts, atomic_write_bytes
from gristmill.stage import MARKER, StageRun


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cfg:
    n: int = 1


@pytest.fixture
def events(monkeypatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("replace", destination) in the order they happen."""
    log: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        log.append(("replace", str(Path(dst).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def test_each_output_is_fsynced_before_its_rename_and_its_folder_after(tmp_path, events):
    out = (tmp_path / "out").resolve()
    run = StageRun("toy", out, _Cfg(), [])
    run.begin()
    for name in ("a.txt", "sub/b.txt"):
        run.tmp_path(name).write_text(name)
        events.clear()
        run.publish(name, rows=1)
        src, dst = str(out / ".tmp" / name), str(out / name)
        assert events == [("fsync", src), ("replace", dst), ("fsync", str(Path(dst).parent))]
    events.clear()
    run.finish(Counts(n_in=2, kept=2))
    manifest = ("replace", str(out / "manifest.json"))
    i = events.index(manifest)
    assert ("fsync", str(out)) in events[:i]          # renames and prunes are on disk first
    assert events[i - 1][0] == "fsync" and events[i + 1:] == [("fsync", str(out))]  # nothing after
    assert ("replace", str(out / MARKER)) in events[:i]


def test_atomic_write_fsyncs_the_file_then_the_folder(tmp_path, events):
    atomic_write_bytes(tmp_path / "x.json", b"{}")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[1][1] == str((tmp_path / "x.json").resolve()) and events[2][1] == str(tmp_path.resolve())


def test_a_folder_built_aside_is_fsynced_whole_before_its_rename(tmp_path, events):
    from gristmill.manifest import replace_dir_durably

    src, dst = tmp_path / "export.tmp", tmp_path / "export"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w")
    (src / "sub" / "config.json").write_text("{}")
    replace_dir_durably(src, dst)
    i = events.index(("replace", str(dst.resolve())))
    synced = {e[1] for e in events[:i]}
    assert {str((src / "model.safetensors").resolve()), str((src / "sub" / "config.json").resolve()),
            str(src.resolve())} <= synced
    assert events[i + 1:] == [("fsync", str(tmp_path.resolve()))]


def test_a_png_is_written_aside_fsynced_and_renamed_into_place(tmp_path, events):
    from gristmill.infra.plots import new_figure, save_png

    out = tmp_path / "zipf.png"
    save_png(new_figure(), out)
    (_, tmp), replaced, synced_dir = events
    assert Path(tmp).parent == tmp_path.resolve() and Path(tmp).name.startswith(".zipf.png.")
    assert replaced == ("replace", str(out.resolve())) and synced_dir == ("fsync", str(tmp_path.resolve()))
    assert [p.name for p in tmp_path.iterdir()] == ["zipf.png"]


def test_resume_rewrites_metrics_aside_and_a_crash_keeps_the_history(tmp_path, events, monkeypatch):
    import gristmill.manifest as manifest
    from gristmill.formats.run_metrics import METRICS, read_metrics
    from gristmill.train.metrics import MetricsLog

    path = tmp_path / METRICS
    history = "".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 6))
    path.write_text(history)

    def crash(src, dst, **kw):
        raise OSError(5, "power cut")

    with monkeypatch.context() as m:  # the rename never happens: the old history is whole
        m.setattr(manifest, "replace_durably", crash)
        with pytest.raises(OSError, match="power cut"):
            MetricsLog(tmp_path, enabled=True, resume_step=3, tensorboard=False)
    assert path.read_text() == history

    for p in tmp_path.glob(f".{METRICS}.tmp-*"):
        p.unlink()
    inode = path.stat().st_ino
    events.clear()
    MetricsLog(tmp_path, enabled=True, resume_step=3, tensorboard=False).close()
    assert [r.step for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"] and events[1][1] == str(path.resolve())
