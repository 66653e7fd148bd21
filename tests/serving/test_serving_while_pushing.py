"""The server reads the serving directory while the pipeline's Pusher writes into it.

Versions are published with the Pusher's own code path (components.image_pusher
.executor.publish: staging folder, then rename) while clients keep predicting;
no request may fail and the server must move to each new version.
"""

import base64
import threading

import requests

from components.image_pusher import executor as pusher
from tests.serving import server_process

MODEL = 'cats_dogs'


def test_no_request_fails_while_versions_are_pushed(tmp_path, exported_models, image_bytes):
    base = tmp_path / MODEL
    pusher.publish(exported_models.image_v1, str(base), 1)
    server = server_process.ServerProcess([
        f'--model_name={MODEL}', f'--model_base_path={base}',
        '--file_system_poll_wait_seconds=1'], tmp_path / 'server.log', grpc=False).start()
    body = {'instances': [{'b64': base64.b64encode(next(iter(image_bytes.values()))).decode()}]}
    failures, answered, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                response = requests.post(f'{server.url}/v1/models/{MODEL}:predict', json=body,
                                         timeout=60)
                if response.status_code != 200:
                    failures.append((response.status_code, response.text[:300]))
                else:
                    answered.append(1)
            except requests.RequestException as e:
                failures.append(('exception', str(e)))

    try:
        server.wait_ready()
        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        for version, source in ((2, exported_models.image_v2), (3, exported_models.image_v1)):
            pusher.publish(source, str(base), version)

            def serving(v=version):
                states = requests.get(f'{server.url}/v1/models/{MODEL}', timeout=10).json()
                return any(s['version'] == str(v) and s['state'] == 'AVAILABLE'
                           for s in states['model_version_status'])

            server_process.wait_for(serving, timeout=120, what=f'version {version}')
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        assert len(answered) > 10
        answer = requests.post(f'{server.url}/v1/models/{MODEL}/versions/3:predict', json=body,
                               timeout=60)
        assert answer.status_code == 200
        assert 'Traceback' not in server.log()
    finally:
        stop.set()
        server.stop()
