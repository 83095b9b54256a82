"""The [cluster] table: kinds, the Slurm worker job dask-jobqueue would submit, path checks."""

from __future__ import annotations

import pytest

from gristmill.errors import GristmillError
from gristmill.infra.dask import ClusterConfig, check_paths, slurm_cluster_kwargs


def test_slurm_workers_job_script(tmp_path):
    from dask_jobqueue import SLURMCluster

    cfg = ClusterConfig(kind="slurm", queue="cpu", account="lm", cores=16, processes=8, memory="64GB",
                        walltime="01:30:00", job_extra=("--constraint=icelake",),
                        job_setup=("source /shared/venv/bin/activate",))
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
