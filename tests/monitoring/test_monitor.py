"""The monitoring loop end to end: serve the pushed version with a request log (a real server
in a subprocess, REST and gRPC), run `python -m monitoring.monitor` on the log, read its
verdict, exit status and report."""

import base64
import json
import os
import subprocess
import sys

import grpc as grpc_lib
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import features
from models import profile
from monitoring import monitor
from serving import client as client_lib
from serving_formats import request_log_format as fmt
from tests.monitoring import images
from tests.serving import server_process

MODEL = 'monitored'


def grpc_classify(target: str, payloads) -> None:
    """One gRPC Classify request of tf.Examples holding the images."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = features.EXAMPLES_SIGNATURE
    for payload in payloads:
        example = request.input.example_list.examples.add()
        example.features.feature[features.IMAGE_KEY].bytes_list.value.append(payload)
    with grpc_lib.insecure_channel(target) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(
            request, 30.0)
    assert len(result.result.classifications) == len(payloads)


def clean_photos():
    """40 held-out photos: 18 cats and 18 dogs as they are, and the smallest photo of the
    held-out set (59x41), one blown up to 4032x3024, one as PNG, one in greyscale."""
    photos = [p.read_bytes() for label in ('cats', 'dogs')
              for p in images.held_out_photos(label, 18)]
    tiny = images.HELD_OUT / 'cats' / 'cat.2433.jpg'
    extra = [p.read_bytes() for p in images.held_out_photos('dogs', 3, offset=18)]
    return photos + [tiny.read_bytes(), images.huge(extra[0]), images.as_png(extra[1]),
                     images.greyscale(extra[2])]


@pytest.fixture(scope='module')
def traffic(tmp_path_factory, pushed_version):
    """Phase name -> a request log of that phase alone; the served version dir; the work dir."""
    work = tmp_path_factory.mktemp('monitor')
    base = work / MODEL
    base.mkdir()
    version_dir = server_process.copy_version(pushed_version, base, 1)
    log_path = work / 'requests.log'
    server = server_process.ServerProcess(
        [f'--model_name={MODEL}', f'--model_base_path={base}',
         f'--request_log_file={log_path}', '--request_log_include_image_bytes'],
        work / 'server.log').start()
    plans = {
        'clean': clean_photos(),
        'dark': [images.darkened(p.read_bytes()) for label in ('cats', 'dogs')
                 for p in images.held_out_photos(label, 20, offset=100)],
        'one_class': [p.read_bytes() for p in images.held_out_photos('cats', 200, offset=200)],
    }
    phases = {}
    lines = 0
    try:
        server.wait_ready()
        rest = client_lib.RestClient(server.url, MODEL)
        grpc = client_lib.GrpcClient(server.grpc_target, MODEL)
        for name, payloads in plans.items():
            start = log_path.stat().st_size if log_path.exists() else 0
            for i in range(0, len(payloads), 4):
                batch = payloads[i:i + 4]
                if name == 'clean' and i % 16 == 4:
                    grpc.predict(batch)                     # gRPC :predict is logged too
                elif name == 'clean' and i % 16 == 12:
                    grpc_classify(server.grpc_target, batch)  # and gRPC :classify
                elif name == 'clean' and i % 16 == 8:
                    requests.post(                            # and REST :classify
                        f'{server.url}/v1/models/{MODEL}:classify',
                        json={'signature_name': features.EXAMPLES_SIGNATURE, 'examples': [
                            {features.IMAGE_KEY: {'b64': base64.b64encode(b).decode()}}
                            for b in batch]}, timeout=60).raise_for_status()
                else:
                    rest.predict(batch)
                lines += 1
            if name == 'clean':
                rest.predict(payloads[:1])                    # a repeated image
                response = requests.post(f'{server.url}/v1/models/{MODEL}:predict', json={
                    'instances': [{'b64': base64.b64encode(b'not an image').decode()}]},
                    timeout=60)
                assert response.status_code == 400            # a failed request
                lines += 2
            server_process.wait_for(
                lambda: log_path.read_text().count('\n') >= lines, what='the request log')
            with open(log_path, 'rb') as f:
                f.seek(start)
                phases[name] = work / f'{name}.log'
                phases[name].write_bytes(f.read())
        grpc.close()
    finally:
        server.stop()
    return phases, version_dir, work


def cli(log, version_dir, out, *extra):
    return subprocess.run(
        [sys.executable, '-m', 'monitoring.monitor', '--request-log', str(log),
         '--model-dir', str(version_dir), '--out', str(out), *extra],
        cwd=str(server_process.PROJECT_ROOT), env=server_process.subprocess_env(),
        capture_output=True, text=True, timeout=600)


def test_the_pushed_version_carries_its_reference_profile(pushed_version):
    reference = profile.load(os.path.join(pushed_version, features.ASSETS_EXTRA,
                                          profile.PROFILE_FILE))
    rows = reference['rows']
    splits = [row[profile.SPLIT] for row in rows]
    assert splits.count(features.TRAIN_SPLIT) == 40 and splits.count(features.EVAL_SPLIT) == 60
    # Answers on the eval images only; embeddings on all (the transfer model's base is
    # frozen, so the train images' embeddings are as good a reference as the eval ones').
    assert all((row.get(profile.PREDICTED) is not None) == (row[profile.SPLIT] == 'eval')
               for row in rows)
    assert all(len(row[profile.EMBEDDING]) == profile.EMBEDDING_DIMENSIONS for row in rows)
    assert np.asarray(reference['projection']).shape[1] == profile.EMBEDDING_DIMENSIONS


def test_clean_traffic_exits_0_with_its_window_in_the_report(traffic, capsys):
    phases, version_dir, work = traffic
    records = [json.loads(line) for line in phases['clean'].read_text().splitlines()]
    assert {(r[fmt.ENTRYPOINT], r[fmt.API]) for r in records} == {
        ('REST', 'predict'), ('REST', 'classify'), ('GRPC', 'predict'), ('GRPC', 'classify')}
    # The command line's own function, in this process (the darkened case below runs it
    # in a fresh one).
    status = monitor.main(['--request-log', str(phases['clean']), '--model-dir', version_dir,
                           '--out', str(work / 'out_clean')])
    out = capsys.readouterr().out
    assert status == monitor.EXIT_OK, out
    assert out.startswith('No drift: 12 statistics within their thresholds - 40 images of '
                          'version 1, ')
    verdict = json.loads((work / 'out_clean' / 'verdict.json').read_text())
    assert verdict['drifted'] is False and verdict['image_bytes_logged'] == 'all'
    counts = verdict['window']['counts']
    assert counts['failed requests'] == 1 and counts['repeated images'] == 1
    times = sorted(r[fmt.TIME] for r in records if r[fmt.STATUS] == fmt.OK)
    assert (verdict['window']['first_time'], verdict['window']['last_time']) == (
        times[0], times[-1])
    page = (work / 'out_clean' / 'report.html').read_text()
    assert verdict['verdict'] in page and f'{times[0]} to {times[-1]}' in page
    assert 'failed requests' in page and '<figure>' not in page


def test_darkened_traffic_exits_3_and_shows_the_dark_images(traffic):
    phases, version_dir, work = traffic
    result = cli(phases['dark'], version_dir, work / 'out_dark')
    assert result.returncode == monitor.EXIT_DRIFT, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == ''
    line = next(l for l in result.stdout.splitlines() if l.startswith('DRIFT brightness: '))
    assert 'share of images with brightness at or below ' in line
    assert ' in the window vs ' in line and ' in the reference; Kolmogorov-Smirnov ' in line
    assert ', above the threshold ' in line
    verdict = json.loads((work / 'out_dark' / 'verdict.json').read_text())
    [finding] = [f for f in verdict['findings'] if f['statistic'] == 'brightness']
    assert finding['value'] > finding['threshold'] and finding['measured'] > 0.9
    page = (work / 'out_dark' / 'report.html').read_text()
    images_section = page[page.index('id="images"'):page.index('id="statistics"')]
    assert images_section.count('<figure>') >= 8      # thumbnails of the darkest images


def test_one_class_is_caught_from_a_log_without_image_bytes(traffic):
    phases, version_dir, work = traffic
    stripped = work / 'one_class_no_bytes.log'
    with open(phases['one_class'], encoding='utf-8') as src, open(stripped, 'w') as dst:
        for line in src:
            record = json.loads(line)
            for image in record[fmt.IMAGES]:
                image.pop(fmt.IMAGE_B64)
            dst.write(json.dumps(record) + '\n')
    verdict = monitor.monitor(str(stripped), version_dir, str(work / 'out_one_class'))
    assert verdict['image_bytes_logged'] == 'none'
    checked = {f['statistic'] for f in verdict['findings']}
    assert checked == {'bytes', 'width', 'height', 'aspect', 'predicted', 'confidence'}
    assert 'predicted' in verdict['drifted_statistics'], verdict['verdict']
    [finding] = [f for f in verdict['findings'] if f['statistic'] == 'predicted']
    reference = profile.load(os.path.join(version_dir, 'assets.extra', profile.PROFILE_FILE))
    answers = [row[profile.PREDICTED] for row in reference['rows'] if row.get(profile.PREDICTED)]
    assert finding['measure'] == "share of predicted 'cats'"
    assert finding['reference'] == pytest.approx(answers.count('cats') / len(answers), abs=1e-3)
    assert finding['measured'] > finding['reference'] + 0.2
    assert 'no image bytes' in verdict['checked_text']
    page = (work / 'out_one_class' / 'report.html').read_text()
    assert 'sha256 (start)' in page and '<figure>' not in page


def test_user_errors_exit_2(traffic, tmp_path, capsys):
    phases, version_dir, _ = traffic
    cases = {
        'does not exist': ['--request-log', str(tmp_path / 'missing.log'),
                           '--model-dir', version_dir],
        'is not a pushed model version': ['--request-log', str(phases['dark']),
                                          '--model-dir', str(tmp_path)],
        'at least 100 are needed': ['--request-log', str(phases['dark']),
                                    '--model-dir', version_dir, '--min-images', '100'],
        '--false-alarm-rate must be in (0, 1)': ['--request-log', str(phases['dark']),
                                                 '--model-dir', version_dir,
                                                 '--false-alarm-rate', '2'],
    }
    for message, argv in cases.items():
        assert monitor.main(argv + ['--out', str(tmp_path / 'out')]) == monitor.EXIT_USAGE
        assert message in capsys.readouterr().err
