"""A bounded background producer: the loader assembles the next steps while the model trains."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any


def prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Produce ``items`` in a background thread, ``depth`` ahead; errors re-raise in the caller."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    thread = threading.Thread(target=work, name="gristmill-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        # Stop and join the producer here: a thread still reading shards when the interpreter
        # shuts down can be cut off inside native code.
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()  # unblock a producer waiting to put its "end"
        thread.join(timeout=10)


__all__ = ["prefetch"]
