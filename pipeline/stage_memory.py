"""Memory between the components of a run in one process (local_runner.py).

LocalDagRunner runs every component in the runner's process, one after the other. What
a finished component leaves behind (a loaded SavedModel's or converter's objects hold
reference cycles) is freed only by a full garbage collection, which the runner's frozen
imports make rare; until then each stage's leftovers add up. A full collection after
each component frees them before the next one starts: the process's peak is then about
its largest stage's, not the sum of what each kept (docs/benchmarks.md: issue 40, memory).
"""

import contextlib
import gc
import logging
import time
from typing import Iterator

from pipeline import console


def collect(node_id: str) -> None:
    """A full collection, logged (the run's log) with what it found and its time."""
    start = time.perf_counter()
    found = gc.collect()
    logging.getLogger(__name__).info('after %s: %d unreachable objects collected in %.2f s',
                                     node_id, found, time.perf_counter() - start)


@contextlib.contextmanager
def collected_after_each_component() -> Iterator[None]:
    """While open, each component's finish (LocalDagRunner's record of it) runs collect."""
    handler = console.ComponentEvents(lambda _: None, collect)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
