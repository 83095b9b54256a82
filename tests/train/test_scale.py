"""Scale lines: tokens per parameter beside Chinchilla's ~20 (train), corpus tokens beside
published training sets (shards stats)."""

from __future__ import annotations

import logging

from gristmill.progress import PROGRESS_LOGGER
from gristmill.tokenize.stats import format_stats, shard_stats
from gristmill.stage import Runtime
from gristmill.train.config import ParallelConfig, TrainConfig
from gristmill.train.scale import corpus_scale_line, tokens_per_parameter_line
from gristmill.train.run import load_run
from gristmill.train.trainer import train
from tests.train.shardkit import random_shards


def test_tokens_per_parameter_line():
    assert tokens_per_parameter_line(2_000_000, 10_000_000) == (
        "10 M training tokens for 2 M parameters = 5 tokens/parameter; "
        "compute-optimal (Chinchilla, ~20 tokens/parameter): 40 M tokens")


def test_corpus_scale_line():
    assert corpus_scale_line(3_000_000_000) == (
        "scale: 3 B tokens = 1% of GPT-3 (Brown et al. 2020)'s 300 B, "
        "0.15% of Llama 2 (Touvron et al. 2023)'s 2 T")


def test_shards_stats_prints_the_corpus_scale(tiny_shards):
    d, _ = tiny_shards
    assert corpus_scale_line(12) in format_stats(shard_stats(d, top=3)).splitlines()


def test_train_logs_tokens_per_parameter(tmp_path, caplog):
    shards = random_shards(tmp_path / "s", n_docs=40, seed=1)
    cfg = TrainConfig(max_steps=2, micro_batch=4, seq_len=16, batch_tokens=128,
                      parallel=ParallelConfig(threads=1))
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        train(shards, tmp_path / "run", cfg, Runtime())
    params = load_run(tmp_path / "run").model.num_params()
    lines = [r.getMessage() for r in caplog.records if "tokens/parameter" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0] == tokens_per_parameter_line(params, 256)  # 2 steps x 128 tokens
    assert lines[0].startswith("256 training tokens for ")
