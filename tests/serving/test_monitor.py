"""serving.monitor on real traffic through a real server: in-distribution photos pass,
shifted traffic is flagged by the statistic that shifted."""

import base64
import io
import json
import os
import subprocess
import sys

import grpc as grpc_lib
import pytest
import requests
from PIL import Image, ImageEnhance
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import features
from models import profile
from serving import client as client_lib
from serving import drift
from serving import monitor
from tests import data
from tests.serving import server_process

MODEL = 'monitored'
RESAMPLES = 40
FALSE_ALARM_RATE = drift.DEFAULT_FALSE_ALARM_RATE


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, 'JPEG', quality=90)
    return out.getvalue()


def darkened(payload: bytes) -> bytes:
    return _jpeg(ImageEnhance.Brightness(Image.open(io.BytesIO(payload)).convert('RGB'))
                 .enhance(0.35))


def greyscale(payload: bytes) -> bytes:
    return _jpeg(Image.open(io.BytesIO(payload)).convert('L').convert('RGB'))


def grpc_classify(target: str, images) -> None:
    """One gRPC Classify request of tf.Examples holding the images."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = features.EXAMPLES_SIGNATURE
    for image in images:
        example = request.input.example_list.examples.add()
        example.features.feature[features.IMAGE_KEY].bytes_list.value.append(image)
    with grpc_lib.insecure_channel(target) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(
            request, 30.0)
    assert len(result.result.classifications) == len(images)


def held_out_photos(label: str, count: int):
    """Validation photos the pipeline of `small_run` never saw (it used the first 30)."""
    return [p.read_bytes() for p in data.photos('validation', label, count, offset=30)]


@pytest.fixture(scope='module')
def traffic(tmp_path_factory, exported_models):
    """Phase name -> a request log of that phase alone, and the served version dir."""
    work = tmp_path_factory.mktemp('monitor')
    base = work / MODEL
    base.mkdir()
    version_dir = server_process.copy_version(exported_models.image_v1, base, 1)
    log_path = work / 'requests.log'
    server = server_process.ServerProcess(
        [f'--model_name={MODEL}', f'--model_base_path={base}',
         f'--request_log_file={log_path}', '--request_log_include_image_bytes'],
        work / 'server.log').start()
    phases = {}
    sent = 0
    try:
        server.wait_ready()
        rest = client_lib.RestClient(server.url, MODEL)
        grpc = client_lib.GrpcClient(server.grpc_target, MODEL)
        photos = held_out_photos('cats', 20) + held_out_photos('dogs', 20)
        plans = {
            'in_distribution': photos,
            'darkened': [darkened(p) for p in photos],
            'greyscale': [greyscale(p) for p in photos],
            'one_class': held_out_photos('cats', 60),
            # Images of another kind (flat colours and squares): what the model has
            # learnt to see moves, the embedding says so.
            'other_kind': [data.synthetic_image(i) for i in range(40)],
        }
        for name, images in plans.items():
            start = log_path.stat().st_size if log_path.exists() else 0
            requests_sent = 0
            for i in range(0, len(images), 4):
                batch = images[i:i + 4]
                if name == 'in_distribution' and i % 16 == 4:
                    grpc.predict(batch)            # gRPC :predict is logged too
                elif name == 'in_distribution' and i % 16 == 12:
                    grpc_classify(server.grpc_target, batch)   # and gRPC :classify
                elif name == 'in_distribution' and i % 16 == 8:
                    response = requests.post(      # and REST :classify
                        f'{server.url}/v1/models/{MODEL}:classify',
                        json={'signature_name': features.EXAMPLES_SIGNATURE, 'examples': [
                            {features.IMAGE_KEY: {'b64': base64.b64encode(b).decode()}}
                            for b in batch]}, timeout=60)
                    response.raise_for_status()
                else:
                    rest.predict(batch)
                requests_sent += 1
            sent += requests_sent
            server_process.wait_for(
                lambda: log_path.read_text().count('\n') >= sent, what='the request log')
            with open(log_path, 'rb') as f:
                f.seek(start)
                phase_log = work / f'{name}.log'
                phase_log.write_bytes(f.read())
            phases[name] = phase_log
        grpc.close()
    finally:
        server.stop()
    return phases, version_dir, work


def run_monitor(log, version_dir, out):
    return monitor.monitor(str(log), str(version_dir), str(out),
                           false_alarm_rate=FALSE_ALARM_RATE, resamples=RESAMPLES)


def test_the_pushed_version_carries_its_reference_profile(traffic):
    _, version_dir, _ = traffic
    reference = profile.load(os.path.join(version_dir, features.ASSETS_EXTRA,
                                          profile.PROFILE_FILE))
    splits = [row['split'] for row in reference['rows']]
    assert splits.count(features.TRAIN_SPLIT) == 40 and splits.count(features.EVAL_SPLIT) == 60
    assert all(row.get('predicted') is not None for row in reference['rows']
               if row['split'] == features.EVAL_SPLIT)
    assert len(reference['embedding']['reduced']) == 60     # the eval images' only


def test_in_distribution_traffic_is_not_flagged(traffic):
    phases, version_dir, work = traffic
    # Logged from REST and gRPC, :predict and :classify, and all read by the monitor.
    records = [json.loads(line) for line in phases['in_distribution'].read_text().splitlines()]
    assert {(r['entrypoint'], r['api']) for r in records} == {
        ('REST', 'predict'), ('REST', 'classify'), ('GRPC', 'predict'), ('GRPC', 'classify')}
    verdict = run_monitor(phases['in_distribution'], version_dir, work / 'out_same')
    assert verdict['images'] == 40 and verdict['image_bytes_logged']
    assert verdict['drifted'] is False, [f['words'] for f in verdict['findings']]
    checked = {f['statistic'] for f in verdict['findings']}
    assert {'brightness', 'contrast', 'saturation', 'predicted', 'confidence',
            'embedding'} <= checked
    assert (work / 'out_same' / 'report.html').read_text().count('no drift') >= 1
    assert json.loads((work / 'out_same' / 'verdict.json').read_text())['drifted'] is False
    # Every statistic shows what in-distribution traffic gives.
    assert all(f['typical'] is not None and f['threshold'] is not None
               for f in verdict['findings'])


@pytest.mark.parametrize('phase,statistic,words', [
    ('darkened', 'brightness', 'mean brightness 0.'),
    ('greyscale', 'saturation', 'mean saturation 0 vs 0.'),
])
def test_shifted_images_are_named_by_the_statistic_that_moved(traffic, phase, statistic,
                                                              words):
    phases, version_dir, work = traffic
    verdict = run_monitor(phases[phase], version_dir, work / f'out_{phase}')
    assert verdict['drifted']
    assert statistic in verdict['drifted_statistics'], verdict['drifted_statistics']
    [finding] = [f for f in verdict['findings'] if f['statistic'] == statistic]
    assert finding['words'].startswith(words) and ', above ' in finding['words']
    anomalies = (work / f'out_{phase}' / 'anomalies.pbtxt').read_text()
    assert f'step: "{statistic}"' in anomalies and 'JENSEN_SHANNON_DIVERGENCE' in anomalies


def test_images_of_another_kind_move_the_embedding(traffic):
    phases, version_dir, work = traffic
    verdict = run_monitor(phases['other_kind'], version_dir, work / 'out_other_kind')
    assert verdict['drifted'] and 'embedding' in verdict['drifted_statistics']
    [finding] = [f for f in verdict['findings'] if f['statistic'] == 'embedding']
    assert finding['words'].startswith('embedding distance (MMD) ')
    assert finding['value'] > finding['threshold']


def test_one_class_traffic_is_caught_from_the_log_without_image_bytes(traffic):
    phases, version_dir, work = traffic
    stripped = work / 'one_class_no_bytes.log'
    with open(phases['one_class'], encoding='utf-8') as src, open(stripped, 'w') as dst:
        for line in src:
            record = json.loads(line)
            for image in record['images']:
                image.pop('b64')
            dst.write(json.dumps(record) + '\n')
    verdict = run_monitor(stripped, version_dir, work / 'out_one_class')
    assert verdict['image_bytes_logged'] is False
    checked = {f['statistic'] for f in verdict['findings']}
    assert checked == {'bytes', 'width', 'height', 'aspect', 'predicted', 'confidence'}
    assert 'predicted' in verdict['drifted_statistics']
    [finding] = [f for f in verdict['findings'] if f['statistic'] == 'predicted']
    assert finding['words'].startswith("predicted '")
    assert 'no image bytes' in verdict['checked_text']


def test_cli_exit_codes(traffic, tmp_path):
    phases, version_dir, _ = traffic

    def cli(phase):
        return subprocess.run(
            [sys.executable, '-m', 'serving.monitor', '--request-log', str(phases[phase]),
             '--model-dir', str(version_dir), '--out', str(tmp_path / f'cli_{phase}'),
             '--resamples', str(RESAMPLES), '--false-alarm-rate', str(FALSE_ALARM_RATE)],
            cwd=str(server_process.PROJECT_ROOT), env=server_process.subprocess_env(),
            capture_output=True, text=True, timeout=600)

    result = cli('darkened')
    assert result.returncode == monitor.EXIT_DRIFT, result.stderr[-2000:]
    assert 'DRIFT brightness: mean brightness' in result.stdout
    assert result.stderr == ''
    same = cli('in_distribution')
    assert same.returncode == monitor.EXIT_OK, same.stdout[-2000:] + same.stderr[-2000:]
    assert monitor.main(['--request-log', str(tmp_path / 'missing.log'),
                         '--model-dir', str(version_dir)]) == monitor.EXIT_USAGE
    assert monitor.main(['--request-log', str(phases['darkened']),
                         '--model-dir', str(tmp_path)]) == monitor.EXIT_USAGE


def test_rotated_logs_are_read_oldest_first(tmp_path):
    for name in ('requests.log', 'requests.log.1', 'requests.log.2', 'requests.log.lock'):
        (tmp_path / name).write_text('')
    log = str(tmp_path / 'requests.log')
    assert monitor.log_files(log) == [log + '.2', log + '.1', log]
