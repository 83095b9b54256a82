"""Where Dask work runs: one builder for the stages and for the pipeline that shares a cluster among them.

A stage asks :func:`dask_client` for a client: a LocalCluster of single-threaded worker
processes, or the existing scheduler its :class:`~gristmill.stage.Runtime` names. A pipeline's
``[cluster]`` table (:class:`ClusterConfig`) picks a local cluster, an existing scheduler or
Slurm workers (dask-jobqueue); :func:`data_runtime` opens it once for all the data stages and
hands each stage its scheduler address, so workers start once. On a shared cluster every
worker must see the inputs and the output root at the same paths; :func:`check_paths`
proves it before any stage runs.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from gristmill.errors import FieldError, GristmillError
from gristmill.infra.hardware import usable_cores
from gristmill.stage import Runtime

log = logging.getLogger(__name__)
# Dask settings of the workers gristmill starts, locally or as Slurm jobs (worker_exports);
# workers read them when they start. Each bounds a worker's memory by design:
WORKER_CONFIG: dict[str, Any] = {
    # A p2p shuffle (dedup's) may by default buffer 1 GiB of outgoing and 100 MiB of
    # to-be-written pieces per worker, more than a whole worker needs here.
    "distributed.p2p.comm.buffer": "64 MiB",
    "distributed.p2p.storage.buffer": "32 MiB",
    # The statistical profiler keeps one stack profile per second for the last 1,000 s: a
    # worker's memory would grow with the run's length, up to tens of MiB (BENCHMARKS.md).
    "distributed.worker.profile.enabled": False,
}
# Arrow's allocator for the workers gristmill starts (see worker_environ).
ARROW_POOL = "jemalloc"

Say = Callable[[str], None]


@contextmanager
def dask_client(runtime: Runtime) -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client`` for the runtime: connect to ``scheduler`` or start a LocalCluster.

    Local workers are processes with one thread each: document rules are pure Python
    and would serialize on the GIL in threads.
    """
    import distributed

    _quiet_dask()
    if runtime.scheduler:
        with connect(runtime.scheduler) as client:
            log.info("using Dask scheduler %s (dashboard: %s)", runtime.scheduler, client.dashboard_link)
            yield client
        return
    n = runtime.workers or usable_cores()
    with local_cluster(n) as cluster, distributed.Client(cluster) as client:
        log.info("started a local Dask cluster with %d workers (dashboard: %s)", n, client.dashboard_link)
        yield client


@contextmanager
def local_cluster(n: int) -> Iterator["distributed.LocalCluster"]:  # noqa: F821
    """A LocalCluster of ``n`` single-threaded worker processes."""
    import dask
    import distributed

    # Workers inherit these: tokenizers' own thread pool would fight Dask's processes.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # pre-spawn-environ: set before each worker process starts (keys added to Dask's own).
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in worker_environ().items()}
    # ":0": the scheduler's HTTP server (started even without a dashboard) takes a free
    # port, instead of warning when another cluster holds 8787.
    with dask.config.set({**WORKER_CONFIG, **environ}), \
            distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        yield cluster


def worker_environ() -> dict[str, str]:
    """Environment for the worker processes gristmill starts: Arrow's jemalloc pool where this
    pyarrow has one, unless the user chose a pool (``ARROW_DEFAULT_MEMORY_POOL``).

    Why: with Arrow's default (mimalloc) pool a worker keeps the memory of every p2p shuffle
    it has served. Side by side, dedup's peak grew +26 % from 0.2 to 2 GB of text with it and
    +15 % with jemalloc, 15-23 % lower, with no speed change beyond run-to-run spread
    (BENCHMARKS.md). The variable is read once per process, so it is set before a worker starts.
    A worker started elsewhere may have a pyarrow without jemalloc: Arrow then warns and keeps its default.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return {}
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc (some macOS and conda builds)
        return {}
    return {"ARROW_DEFAULT_MEMORY_POOL": ARROW_POOL}


def worker_exports() -> list[str]:
    """Shell lines that give a worker started elsewhere (a Slurm job) what :func:`local_cluster`
    gives local ones: ``WORKER_CONFIG`` as Dask's ``DASK_*`` variables, and :func:`worker_environ`."""
    dask_env = {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
                for key, value in WORKER_CONFIG.items()}
    return [f"export {k}={shlex.quote(v)}" for k, v in {**dask_env, **worker_environ()}.items()]


def connect(address: str) -> "distributed.Client":  # noqa: F821
    """A client of the existing scheduler at ``address``, or a one-line error when it cannot be reached."""
    import distributed

    try:
        return distributed.Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise GristmillError(f"cannot reach Dask scheduler {address}: {e}") from None


def _quiet_dask() -> None:
    """Keep Dask's INFO chatter (and shuffle notices) out of the user's terminal unless -vv.

    Importing distributed (lazily, in the callers) re-applies its own log levels; this runs after it.
    """
    if logging.getLogger("gristmill").getEffectiveLevel() <= logging.DEBUG:
        return
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("distributed", "tornado", "bokeh"):
            logging.getLogger(name).setLevel(logging.ERROR)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterConfig:
    """``[cluster]``: ``kind`` = local (default), scheduler (an address) or slurm (dask-jobqueue).

    The Slurm settings carry :class:`~gristmill.infra.slurm.SlurmConfig`'s names (``partition``,
    ``time``, ``mem``, ``sbatch_extra``, ``setup``); dask-jobqueue's own names, which this table
    used before, are still read with a warning (``old_names``, applied by :func:`gristmill.config.build`).
    """

    old_names: ClassVar[dict[str, str]] = {"queue": "partition", "walltime": "time", "memory": "mem",
                                           "job_extra": "sbatch_extra", "job_setup": "setup"}

    kind: Literal["local", "scheduler", "slurm"] = "local"
    workers: int | None = None  # local: worker processes (default: all cores)
    scheduler: str | None = None  # scheduler: tcp://host:8786
    # slurm: one Slurm job per ``jobs``, each with ``cores`` cores split into ``processes`` workers
    partition: str | None = None
    account: str | None = None
    jobs: int = 1
    cores: int = 8
    processes: int | None = None
    mem: str = "32GB"  # per job
    time: str = "04:00:00"
    sbatch_extra: tuple[str, ...] = ()  # more "#SBATCH" options, e.g. "--constraint=skylake"
    setup: tuple[str, ...] = ()  # shell lines before the worker starts (module load, venv)
    local_directory: str | None = None  # worker scratch space on the compute nodes
    wait_s: int = 600  # how long to wait for the first worker

    def __post_init__(self) -> None:
        if self.scheduler and self.kind == "local":
            object.__setattr__(self, "kind", "scheduler")  # an address alone means "use it"
        if self.kind == "scheduler" and not self.scheduler:
            raise FieldError("kind", 'kind = "scheduler" needs scheduler = "tcp://HOST:8786"')
        for name in ("workers", "processes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FieldError(name, f"{name} must be >= 1, got {value}")
        for name in ("jobs", "cores", "wait_s"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"{name} must be >= 1")
        if self.processes is not None and self.processes > self.cores:
            raise FieldError("processes", f"processes ({self.processes}) cannot exceed cores ({self.cores})")


def _visible(paths: Sequence[str], writable: str) -> list[str]:
    """Run on each worker: the paths it cannot see (or the root it cannot write to)."""
    missing = [p for p in paths if not os.path.exists(p)]
    if not os.path.isdir(writable) or not os.access(writable, os.W_OK | os.X_OK):
        missing.append(f"{writable} (output root, not writable)")
    return missing


def check_paths(client: Any, inputs: Sequence[Path], root: Path) -> None:
    """Fail clearly unless every worker sees every input and can write to the output root."""
    root.mkdir(parents=True, exist_ok=True)
    results = client.run(_visible, [str(p) for p in inputs], str(root))
    bad = {worker: miss for worker, miss in sorted(results.items()) if miss}
    if bad:
        worker, missing = next(iter(bad.items()))
        raise GristmillError(
            f"{len(bad)} of {len(results)} Dask workers cannot see the pipeline's paths "
            f"(e.g. {worker} cannot see {missing[0]}); inputs and the output root must be on a "
            "filesystem shared by all workers, at the same paths")


def slurm_cluster_kwargs(cfg: ClusterConfig, log_dir: Path) -> dict[str, Any]:
    """Arguments for ``dask_jobqueue.SLURMCluster``: single-threaded worker processes, like locally."""
    processes = cfg.processes or cfg.cores
    return dict(queue=cfg.partition, account=cfg.account, cores=cfg.cores, processes=processes,
                memory=cfg.mem, walltime=cfg.time, job_extra_directives=list(cfg.sbatch_extra),
                job_script_prologue=[*cfg.setup, *worker_exports()],
                local_directory=cfg.local_directory,
                log_directory=str(log_dir), worker_extra_args=["--nthreads", "1"],
                scheduler_options={"dashboard_address": ":8787"})


@contextmanager
def data_runtime(cfg: ClusterConfig, *, inputs: Sequence[Path], root: Path,
                 say: Say = log.info) -> Iterator[Runtime]:
    """Start (or connect to) the cluster the data stages share; yield their :class:`Runtime`."""
    import distributed

    _quiet_dask()
    if cfg.kind == "local":
        n = cfg.workers or usable_cores()
        with local_cluster(n) as cluster:
            say(f"cluster: local, {n} worker processes")
            yield Runtime(scheduler=cluster.scheduler_address)
        return
    if cfg.kind == "scheduler":
        assert cfg.scheduler is not None
        with connect(cfg.scheduler) as client:
            n = len(client.scheduler_info().get("workers", {}))
            say(f"cluster: {cfg.scheduler} ({n} workers), dashboard {client.dashboard_link}")
            if n == 0:
                raise GristmillError(f"the Dask scheduler {cfg.scheduler} has no workers")
            check_paths(client, inputs, root)
            yield Runtime(scheduler=cfg.scheduler)
        return
    with _slurm(cfg, root, say) as address, distributed.Client(address) as client:
        check_paths(client, inputs, root)
        yield Runtime(scheduler=address)


@contextmanager
def _slurm(cfg: ClusterConfig, root: Path, say: Say) -> Iterator[str]:
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise GristmillError('[cluster] kind = "slurm" needs dask-jobqueue: '
                             "pip install 'gristmill[slurm]'") from None
    log_dir = root / "slurm-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with SLURMCluster(**slurm_cluster_kwargs(cfg, log_dir)) as cluster:
        cluster.scale(jobs=cfg.jobs)
        say(f"cluster: Slurm, {cfg.jobs} job(s) of {cfg.cores} cores on partition {cfg.partition or '(default)'}; "
            f"dashboard {cluster.dashboard_link}")
        import distributed

        with distributed.Client(cluster) as client:
            try:
                client.wait_for_workers(1, timeout=cfg.wait_s)
            except TimeoutError:
                raise GristmillError(f"no Slurm worker started within {cfg.wait_s}s (see squeue and "
                                     f"{log_dir})") from None
        yield cluster.scheduler_address
