"""pipeline/stage_memory.py: a component's finish (LocalDagRunner's log record) frees the
reference cycles it left, before the next component starts; outside the block, nothing."""

import gc
import logging
import weakref

from pipeline import stage_memory


class _Cycle:
    def __init__(self):
        self.me = self


def _left_behind():
    """A weak reference to a reference cycle nothing else holds."""
    cycle = _Cycle()
    return weakref.ref(cycle)


def test_a_finished_component_frees_the_cycles_it_left(caplog):
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    gc.disable()     # no automatic collection between the steps below
    try:
        with stage_memory.collected_after_each_component():
            left = _left_behind()
            logging.getLogger('absl').info('Component Trainer is running.')
            assert left() is not None                   # a start frees nothing
            logging.getLogger('absl').info('Component Trainer is finished.')
            assert left() is None
        after = _left_behind()
        logging.getLogger('absl').info('Component Evaluator is finished.')
        assert after() is not None                      # the block is closed
    finally:
        gc.enable()
        root.setLevel(level)
    assert any('after Trainer:' in r.getMessage() and 'collected' in r.getMessage()
               for r in caplog.records)
