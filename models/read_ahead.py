"""An iterator's items made by a thread of their own, a few ahead of the one using them.

BulkInferrer's reader: the next batches of files are read and checked while the model
scores this one (TensorFlow releases the GIL). One thread, in order: the items are the
ones the iterator would have given, in the same order.
"""

import queue
import threading
from typing import Iterable, Iterator, TypeVar

Item = TypeVar('Item')

# Items made ahead of the consumer by default.
DEPTH = 2
# How often a producer waiting on a full queue checks whether the consumer stopped.
_POLL_SECONDS = 0.1
# How long a consumer that stopped waits for the producer to finish its item.
_JOIN_SECONDS = 5


def read_ahead(items: Iterable[Item], depth: int = DEPTH,
               name: str = 'read-ahead') -> Iterator[Item]:
    """items, produced by a thread up to `depth` ahead of the consumer. An error in the
    thread is raised here (with its traceback); a consumer that stops early (break, an
    error, closing the generator) stops the thread after the item it is making (waiting
    for it up to _JOIN_SECONDS; the daemon thread is left to finish it after that)."""
    ready: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # pylint: disable=broad-except
            put(e)                  # raised in the consumer

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=_JOIN_SECONDS)
