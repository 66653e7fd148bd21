"""monitoring/traffic.py: which files and records a window is read from, and what it holds."""

import json

import pytest

from monitoring import traffic
from serving_formats import request_log_format as fmt


def record(time, status=fmt.OK, version=1, hashes=('a',)):
    return {fmt.TIME: time, fmt.STATUS: status, fmt.VERSION: version, fmt.API: 'predict',
            fmt.ENTRYPOINT: 'REST',
            fmt.IMAGES: [{fmt.IMAGE_SHA256: h, fmt.IMAGE_BYTES: 10} for h in hashes]}


def test_rotated_logs_are_read_oldest_first(tmp_path):
    for name in ('requests.log', 'requests.log.1', 'requests.log.2', 'requests.log.10',
                 'requests.log.lock'):
        (tmp_path / name).write_text('')
    log = str(tmp_path / 'requests.log')
    assert traffic.log_files(log) == [log + '.10', log + '.2', log + '.1', log]
    with pytest.raises(traffic.LogError, match='does not exist'):
        traffic.log_files(str(tmp_path / 'other.log'))


def test_lines_that_are_not_records_are_counted_not_fatal(tmp_path):
    path = tmp_path / 'requests.log'
    path.write_text(json.dumps(record('t1')) + '\n\n{"truncated": \n[1, 2]\n'
                    + json.dumps(record('t2')) + '\n')
    records, unreadable = traffic.read_records([str(path)])
    assert [r[fmt.TIME] for r in records] == ['t1', 't2'] and unreadable == 2


def test_the_window_keeps_distinct_images_of_the_version_most_recent_last():
    records = [
        record('2024-05-01T10:00:00Z', hashes=('a', 'b')),
        record('2024-05-01T10:01:00Z', status='INVALID_ARGUMENT', hashes=('x',)),
        record('2024-05-01T10:02:00Z', version=2, hashes=('y',)),
        record('2024-05-01T10:03:00Z', hashes=('c', 'a')),     # a again: now its latest
        record('2024-05-01T10:04:00Z', hashes=('d',)),
    ]
    window = traffic.select_window(records, '1', max_images=3, unreadable_lines=1)
    assert [i[fmt.IMAGE_SHA256] for i in window.images] == ['c', 'a', 'd']
    assert window.counts == {
        'log lines': 6, 'unreadable lines': 1, 'failed requests': 1,
        'requests to other versions': 1, 'requests used': 3, 'images in them': 5,
        'repeated images': 1, 'older images left out': 1}
    assert (window.first_time, window.last_time) == ('2024-05-01T10:03:00Z',
                                                     '2024-05-01T10:04:00Z')
    every_version = traffic.select_window(records, None, max_images=10)
    assert [i[fmt.IMAGE_SHA256] for i in every_version.images] == ['b', 'y', 'c', 'a', 'd']
