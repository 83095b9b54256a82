"""Where Dask work runs: a LocalCluster by default, or an existing scheduler by address."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from gristmill.errors import GristmillError
from gristmill.hardware import usable_cores
from gristmill.stage import Runtime

log = logging.getLogger(__name__)


@contextmanager
def dask_client(runtime: Runtime) -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client`` for the runtime: connect to ``scheduler`` or start a LocalCluster.

    Local workers are processes with one thread each: document rules are pure Python
    and would serialize on the GIL in threads.
    """
    import distributed

    _quiet_dask()
    if runtime.scheduler:
        try:
            client = distributed.Client(runtime.scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise GristmillError(f"cannot reach Dask scheduler {runtime.scheduler}: {e}") from None
        log.info("using Dask scheduler %s (dashboard: %s)", runtime.scheduler, client.dashboard_link)
        try:
            yield client
        finally:
            client.close()
        return
    n = runtime.workers or usable_cores()
    # Workers inherit these: tokenizers' own thread pool would fight Dask's processes.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        log.info("started a local Dask cluster with %d workers (dashboard: %s)", n, client.dashboard_link)
        yield client


def _quiet_dask() -> None:
    """Keep Dask's INFO chatter (and shuffle notices) out of the user's terminal unless -vv."""
    if logging.getLogger("gristmill").getEffectiveLevel() <= logging.DEBUG:
        return
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("distributed", "tornado", "bokeh"):
            logging.getLogger(name).setLevel(logging.ERROR)
