"""Ingest's worker code run in a fresh process that reports its counts and peak RSS.

Shared by the memory tests (``test_ingest_memory.py``, ``test_columnar_memory.py``): a child
process, so that the peak measured is ingest's own and not pytest's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

MiB = 1 << 20

CHILD = """
import json, sys
from pathlib import Path
from gristmill.corpus.ingest import IngestConfig, ingest_unit, plan
from gristmill.manifest import Counts

cfg = IngestConfig()  # the default max_record_bytes
units, _ = plan([Path(p) for p in sys.argv[2:]], cfg.chunk_bytes)
counts = Counts()
for i, unit in enumerate(units):
    counts.merge(ingest_unit(i, unit, cfg, sys.argv[1]).counts)
# VmHWM, not ru_maxrss: Linux carries the forking parent's peak (a big pytest) into a child's
# ru_maxrss across exec, while VmHWM belongs to this process's own address space.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"counts": counts.as_dict(), "maxrss": hwm * 1024}))
"""


def ingest_in_child(out: Path, *inputs: Path, address_space: int | None = None) -> dict[str, Any]:
    """``{"counts", "maxrss"}`` of ingesting ``inputs`` into the temp folder ``out`` in a child.

    ``address_space``: a limit (bytes) on the child's virtual memory, so that a regression fails
    fast with a MemoryError instead of taking the (shared) machine's memory first.
    """
    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    child = subprocess.run([sys.executable, "-c", CHILD, str(out), *map(str, inputs)], capture_output=True,
                           text=True, check=False, preexec_fn=limit)
    limited = f"(address space limited to {address_space // MiB} MiB) " if address_space is not None else ""
    assert child.returncode == 0, f"{limited}{child.stderr[-3000:]}"
    return json.loads(child.stdout.strip().splitlines()[-1])
