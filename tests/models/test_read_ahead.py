"""models/read_ahead.py: items made by a thread ahead of the consumer, in order, errors
raised in the consumer, a consumer that stops early stops the thread."""

import threading

import pytest

from models import read_ahead


def test_items_come_in_order_made_ahead_of_the_consumer():
    made = []
    two_made = threading.Event()

    def items():
        for i in range(10):
            made.append(i)
            if len(made) == 2:
                two_made.set()
            yield i

    got = []
    for item in read_ahead.read_ahead(items(), depth=2):
        if not got:
            # The thread makes the next item while this one is still being used.
            assert two_made.wait(timeout=30)
        got.append(item)
    assert got == list(range(10)) and made == list(range(10))


def test_an_error_in_the_thread_is_raised_in_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError('unreadable: photo.jpg')

    got = []
    with pytest.raises(OSError, match='photo.jpg'):
        for item in read_ahead.read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_thread():
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    before = set(threading.enumerate())
    for item in read_ahead.read_ahead(endless(), depth=1, name='test-read-ahead'):
        if item == 3:
            break
    assert not [t for t in set(threading.enumerate()) - before if t.name == 'test-read-ahead']
    assert len(made) <= 3 + 1 + 2       # the items used, the queue's one, the one being made
