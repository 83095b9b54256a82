"""The [cluster] table: kinds, the Slurm worker job dask-jobqueue would submit, path checks."""

from __future__ import annotations

import dataclasses
import logging
import shlex

import dask
import pytest

from gristmill.config import ConfigKeyError, load
from gristmill.errors import GristmillError
from gristmill.infra.slurm import SlurmConfig
from gristmill.infra.dask import ClusterConfig, check_paths, slurm_cluster_kwargs


def test_slurm_workers_job_script(tmp_path):
    from dask_jobqueue import SLURMCluster

    cfg = ClusterConfig(kind="slurm", partition="cpu", account="lm", cores=16, processes=8, mem="64GB",
                        time="01:30:00", sbatch_extra=("--constraint=icelake",),
                        setup=("source /shared/venv/bin/activate",))
    with SLURMCluster(**slurm_cluster_kwargs(cfg, tmp_path)) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    for expected in ("#SBATCH -p cpu", "#SBATCH -A lm", "#SBATCH -n 1", "#SBATCH --cpus-per-task=16",
                     "#SBATCH -t 01:30:00", "#SBATCH --constraint=icelake",
                     "source /shared/venv/bin/activate"):
        assert expected in lines, expected
    assert "--nworkers 8" in script and "--nthreads 1" in script
    assert f"#SBATCH -e {tmp_path}/" in script


def test_cluster_config_validation():
    with pytest.raises(ValueError, match="processes .* cannot exceed cores"):
        ClusterConfig(kind="slurm", cores=4, processes=8)
    with pytest.raises(ValueError, match="needs scheduler"):
        ClusterConfig(kind="scheduler")


def test_slurm_settings_share_the_slurm_tables_names():
    slurm = {f.name for f in dataclasses.fields(SlurmConfig)}
    cluster = {f.name for f in dataclasses.fields(ClusterConfig)}
    assert set(ClusterConfig.old_names.values()) <= slurm & cluster
    assert not set(ClusterConfig.old_names) & cluster


def test_old_slurm_setting_names_still_load_with_a_warning(tmp_path, caplog):
    p = tmp_path / "p.toml"
    p.write_text('[cluster]\nkind = "slurm"\nqueue = "cpu"\nmemory = "4GB"\nwalltime = "00:10:00"\n'
                 'job_extra = ["--exclusive"]\njob_setup = ["module load x"]\n')
    with caplog.at_level(logging.WARNING, logger="gristmill.config"):
        cfg = load(ClusterConfig, p, "cluster")
    assert cfg == ClusterConfig(kind="slurm", partition="cpu", mem="4GB", time="00:10:00",
                                sbatch_extra=("--exclusive",), setup=("module load x",))
    warned = [r.getMessage() for r in caplog.records]
    assert f"{p} [cluster].queue (line 3): deprecated name, read as 'partition': rename it" in warned
    assert len(warned) == 5


def test_an_old_and_a_new_name_together_are_a_config_error(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[cluster]\nkind = "slurm"\npartition = "gpu"\nqueue = "cpu"\n')
    with pytest.raises(ConfigKeyError) as e:
        load(ClusterConfig, p, "cluster")
    assert (e.value.key, e.value.line) == ("queue", 4)
    assert e.value.message == (f"{p} [cluster].queue: deprecated name of 'partition', which is given too: "
                               "keep only 'partition'")


def test_check_paths_names_the_path_a_worker_cannot_see(tmp_path):
    import distributed

    seen = tmp_path / "in.jsonl"
    seen.write_text("{}\n")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        check_paths(client, [seen], tmp_path / "root")  # fine: creates the root, sees the input
        assert (tmp_path / "root").is_dir()
        with pytest.raises(GristmillError, match=r"1 of 1 Dask workers cannot see .*missing\.jsonl.*shared"):
            check_paths(client, [seen, tmp_path / "missing.jsonl"], tmp_path / "root")


def _worker_memory_setup(dask_worker) -> tuple[str, str | None, bool, int]:
    import os

    import pyarrow as pa

    return (pa.default_memory_pool().backend_name, os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            dask.config.get("distributed.worker.profile.enabled"), len(dask_worker.profile_history))


def _busy(seconds: float) -> int:
    import time

    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(range(1000))
    return n


def test_local_workers_bound_their_memory_and_keep_dasks_own_environment(monkeypatch):
    import distributed
    import pyarrow as pa

    from gristmill.infra.dask import local_cluster

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no jemalloc pool")  # worker_environ() is empty then, as tested below
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    with local_cluster(1) as cluster, distributed.Client(cluster) as client:
        client.submit(_busy, 2.5).result()  # a profiler would have kept a profile per second by now
        (pool, trim, profiling, profiles), = client.run(_worker_memory_setup).values()
    # mimalloc, Arrow's default, keeps what every shuffle took: dedup's peak grew with the corpus.
    assert pool == "jemalloc"
    assert trim == "65536"  # Dask's default pre-spawn variables are added to, not replaced
    assert (profiling, profiles) == (False, 0)


def test_worker_environ_leaves_a_users_arrow_pool_alone(monkeypatch):
    import pyarrow as pa

    from gristmill.infra.dask import worker_environ

    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    assert worker_environ() == {}
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
    monkeypatch.setattr(pa, "jemalloc_memory_pool", lambda: (_ for _ in ()).throw(NotImplementedError()))
    assert worker_environ() == {}


def test_slurm_workers_get_the_local_workers_settings_after_the_users_setup(tmp_path, monkeypatch):
    from gristmill.infra import dask as gd

    monkeypatch.setattr(gd, "worker_environ", lambda: {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"})
    kw = slurm_cluster_kwargs(ClusterConfig(kind="slurm", setup=("module load arrow",)), tmp_path)
    setup, *exports = kw["job_script_prologue"]
    assert setup == "module load arrow"
    env = {}
    for line in exports:
        (assignment,) = shlex.split(line.removeprefix("export "))
        name, value = assignment.split("=", 1)
        env[name] = value
    assert env.pop("ARROW_DEFAULT_MEMORY_POOL") == "jemalloc"
    # What a `dask worker` started by that script reads from its environment.
    seen = dask.config.collect_env(env)
    assert {key: dask.config.get(key, config=seen) for key in gd.WORKER_CONFIG} == gd.WORKER_CONFIG
