"""The one metrics.jsonl reader (training's resume, the report, ablate) and its typed records."""

from __future__ import annotations

import json
import logging

import pytest

from gristmill.formats.run_metrics import (METRICS, SourceVal, TrainRecord, ValRecord, parse_record, read_metrics,
                                           train_records, val_records)
from gristmill.train.metrics import MetricsLog


def test_torn_last_line_is_skipped_quietly(tmp_path, caplog):
    (tmp_path / METRICS).write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.25}\n{"step": 3, "lo')
    with caplog.at_level(logging.WARNING, logger="gristmill"):
        assert read_metrics(tmp_path) == [TrainRecord(step=1, loss=2.5), TrainRecord(step=2, loss=2.25)]
    assert caplog.records == []


def test_bad_middle_lines_are_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / METRICS).write_bytes(b'{"step": 1, "loss": 3}\n\n[1, 2]\nnot json\n\xff\xfe{\n{"step": 2}\n'
                                     b'{"step": "4", "loss": 1.0}\n{"step": 5, "loss": "low"}\n'
                                     b'{"step": 6, "val_loss": 2.0}\n')
    with caplog.at_level(logging.WARNING, logger="gristmill"):
        assert read_metrics(tmp_path) == [TrainRecord(step=1, loss=3.0), ValRecord(step=6, val_loss=2.0)]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        *(f"line {n} is not a JSON object; skipped" for n in (3, 4, 5)),
        "line 6 is not a metrics record (neither 'loss' nor 'val_loss'); skipped",
        "line 7 is not a metrics record (no integer 'step'); skipped",
        "line 8 is not a metrics record ('loss' is not a number); skipped"]


def test_no_file_is_no_records(tmp_path):
    assert read_metrics(tmp_path) == []


def test_records_are_typed_and_split_by_kind(tmp_path):
    lines = [{"step": 1, "loss": 4.0, "lr": 0.001, "grad_norm": 1.5, "tokens_per_s": 900.0, "data_wait_s": 0.01,
              "step_s": 0.2, "mem_gib": 0.5, "tokens": 128, "mfu": None, "mix": {"a": 3, "b": 1}},
             {"step": 1, "val_loss/a": 3.5, "val_bpb/a": 1.25, "val_loss/b": 3.7, "val_bpb/b": None,
              "val_loss": 3.6, "val_bpb": 1.3},
             {"step": 2, "loss": float("nan"), "future_key": [1]}]
    (tmp_path / METRICS).write_text("".join(json.dumps(x) + "\n" for x in lines))
    records = read_metrics(tmp_path)
    train, val = train_records(records), val_records(records)
    assert [r.step for r in train] == [1, 2] and train[0].tokens == 128 and train[0].mix == {"a": 3, "b": 1}
    assert train[0].tokens_per_s == 900.0 and train[0].mfu is None and train[1].loss != train[1].loss  # NaN kept
    assert train[1].extra == {"future_key": [1]}  # a key this gristmill does not know survives a rewrite
    assert val == [ValRecord(step=1, val_loss=3.6, val_bpb=1.3,
                             sources=(SourceVal(name="a", loss=3.5, bpb=1.25), SourceVal(name="b", loss=3.7, bpb=None)))]


def test_as_dict_writes_the_keys_training_always_wrote_in_their_order():
    rec = TrainRecord(step=3, loss=2.0, lr=0.1, grad_norm=1.0, tokens_per_s=10.0, data_wait_s=0.0, step_s=1.0,
                      mem_gib=0.25, tokens=96, mfu=None)
    assert json.dumps(rec.as_dict()) == (
        '{"step": 3, "loss": 2.0, "lr": 0.1, "grad_norm": 1.0, "tokens_per_s": 10.0, "data_wait_s": 0.0, '
        '"step_s": 1.0, "mem_gib": 0.25, "tokens": 96, "mfu": null}')
    val = ValRecord(step=3, val_loss=1.5, val_bpb=None, sources=(SourceVal(name="x", loss=1.4, bpb=0.9),))
    assert json.dumps(val.as_dict()) == ('{"step": 3, "val_loss/x": 1.4, "val_bpb/x": 0.9, '
                                         '"val_loss": 1.5, "val_bpb": null}')
    for r in (rec, val):
        assert parse_record(json.loads(json.dumps(r.as_dict()))) == r


def test_parse_record_says_why_a_line_is_not_one():
    with pytest.raises(ValueError, match="'mix' does not map sources to counts"):
        parse_record({"step": 1, "loss": 1.0, "mix": {"a": "many"}})
    with pytest.raises(ValueError, match="no integer 'step'"):
        parse_record({"step": True, "loss": 1.0})


def test_resume_drops_records_after_the_resumed_step(tmp_path):
    (tmp_path / METRICS).write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 6)) + '{"ste')
    MetricsLog(tmp_path, enabled=True, resume_step=3, tensorboard=False).close()
    assert [r.step for r in read_metrics(tmp_path)] == [1, 2, 3]
