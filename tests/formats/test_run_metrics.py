"""The one metrics.jsonl reader (training's resume, the report, ablate)."""

from __future__ import annotations

import logging

from gristmill.formats.run_metrics import METRICS, read_metrics
from gristmill.train.metrics import MetricsLog


def test_torn_last_line_is_skipped_quietly(tmp_path, caplog):
    (tmp_path / METRICS).write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.25}\n{"step": 3, "lo')
    with caplog.at_level(logging.WARNING, logger="gristmill"):
        assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.25}]
    assert caplog.records == []


def test_bad_middle_lines_are_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / METRICS).write_bytes(b'{"step": 1}\n\n[1, 2]\nnot json\n\xff\xfe{\n{"step": 2}\n')
    with caplog.at_level(logging.WARNING, logger="gristmill"):
        assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        f"line {n} is not a JSON object; skipped" for n in (3, 4, 5)]


def test_no_file_is_no_records(tmp_path):
    assert read_metrics(tmp_path) == []


def test_resume_drops_records_after_the_resumed_step(tmp_path):
    (tmp_path / METRICS).write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 6)) + '{"ste')
    MetricsLog(tmp_path, enabled=True, resume_step=3, tensorboard=False).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
