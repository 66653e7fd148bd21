"""The request log sampled at a seeded rate, on the real server process."""

import base64
import hashlib
import json
import random

import pytest
import requests

from serving import request_log
from tests.serving import server_process

MODEL = 'cats_dogs'
SEED = 7
RATE = 0.5
REQUESTS = 24


@pytest.fixture(scope='module')
def sampled(tmp_path_factory, exported_models):
    root = tmp_path_factory.mktemp('sampled')
    base = root / MODEL
    base.mkdir()
    server_process.copy_version(exported_models.image_v1, base, 1)
    log = root / 'requests.jsonl'
    server = server_process.ServerProcess([
        f'--model_name={MODEL}', f'--model_base_path={base}',
        f'--request_log_file={log}', f'--request_log_sample_rate={RATE}',
        f'--request_log_seed={SEED}',
    ], root / 'server.log', grpc=False).start()
    try:
        server.wait_ready()
        yield server, log
    finally:
        server.stop()


def test_seeded_rate_logs_exactly_the_drawn_requests(sampled, image_paths,
                                                     image_bytes):
    server, log = sampled
    sent = []
    for index in range(REQUESTS):
        # Every fourth request carries a broken image, so errors are sampled
        # like the rest.
        data = (b'broken image %d' % index if index % 4 == 3
                else image_bytes[image_paths[index % len(image_paths)]])
        response = requests.post(
            f'{server.url}/v1/models/{MODEL}:predict',
            json={'instances': [{'b64': base64.b64encode(data).decode()}]},
            timeout=60)
        assert response.status_code == (400 if index % 4 == 3 else 200)
        sent.append((hashlib.sha256(data).hexdigest(), response.status_code))
    draws = random.Random(SEED)
    expected = [sent[i] for i in range(REQUESTS) if draws.random() < RATE]
    assert 0 < len(expected) < REQUESTS
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line['images'][0]['sha256'], line['http_status'])
            for line in lines] == expected
    assert all(line['model'] == MODEL and line['version'] == 1
               for line in lines)


def test_rotation_bounds_the_log(tmp_path):
    path = tmp_path / 'requests.jsonl'
    log = request_log.RequestLog(str(path), max_bytes=2000, backup_count=2)
    try:
        for index in range(100):
            log.write({'index': index, 'padding': 'x' * 80})
    finally:
        log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ['requests.jsonl', 'requests.jsonl.1', 'requests.jsonl.2']
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    last = json.loads(path.read_text().splitlines()[-1])
    assert last['index'] == 99


def test_image_bytes_only_when_asked(image_paths, image_bytes):
    data = image_bytes[image_paths[0]]
    plain = request_log.image_info(data)
    assert 'b64' not in plain
    assert plain['bytes'] == len(data)
    assert plain['sha256'] == hashlib.sha256(data).hexdigest()
    with_bytes = request_log.image_info(data, include_bytes=True)
    assert base64.b64decode(with_bytes['b64']) == data
    with pytest.raises(ValueError, match='sample_rate must be in'):
        request_log.RequestLog('unused', sample_rate=1.5)
