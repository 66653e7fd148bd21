"""The server reads the serving directory while the pipeline's Pusher writes into it.

Versions are published with the Pusher's own code path (components.image_pusher
.executor: staging folder, then rename; withdraw) while clients keep predicting:
a push completes, a push is killed (SIGKILL to a real process inside its staging
step), the next push removes the killed one's staging folder, and a version is
withdrawn again (what the Pusher does when a step after publishing fails). No
request may fail, and the server must move to each version that appears and back
from the one withdrawn.
"""

import base64
import os
import signal
import subprocess
import sys
import threading

import requests

from components.image_pusher import executor as pusher
from components.image_pusher import staging
from tests import data
from tests.serving import server_process

MODEL = 'cats_dogs'

# A push that starts when told (a line on stdin: its imports overlap the server's start),
# stops inside its staging step, says so, and waits to be killed.
_KILLED_PUSH = '''
import sys
from components.image_pusher import executor
def hold(staged):
    print(staged, flush=True)
    sys.stdin.read()
sys.stdin.readline()
executor.publish(sys.argv[1], sys.argv[2], int(sys.argv[3]), prepare=hold)
'''


def test_no_request_fails_while_pushes_complete_die_or_are_withdrawn(
        tmp_path, exported_models, image_bytes):
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

    def serving(version):
        def check():
            states = requests.get(f'{server.url}/v1/models/{MODEL}', timeout=10).json()
            available = {int(s['version']) for s in states['model_version_status']
                         if s['state'] == 'AVAILABLE'}
            return available == {version}
        server_process.wait_for(check, timeout=120, what=f'version {version} alone serving')

    killed = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-c', _KILLED_PUSH, exported_models.image_v1, str(base), '3'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=data.PROJECT_ROOT,
        env=server_process.subprocess_env())
    try:
        server.wait_ready()
        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        # A push completes.
        pusher.publish(exported_models.image_v2, str(base), 2)
        serving(2)

        # A push is killed inside its staging step: nothing appears, version 2 serves on.
        killed.stdin.write('go\n')
        killed.stdin.flush()
        staged = killed.stdout.readline().strip()
        assert staging.is_staging(os.path.basename(staged)), staged
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        assert os.path.isdir(staged) and not (base / '3').exists()
        answered_before = len(answered)
        server_process.wait_for(lambda: len(answered) > answered_before + 5, timeout=60,
                                what='answers after the killed push')
        serving(2)

        # The next push removes the dead push's staging folder at once and completes.
        pusher.publish(exported_models.image_v1, str(base), 3)
        assert sorted(os.listdir(base)) == ['1', '2', '3']
        serving(3)

        # A version withdrawn again: the server goes back to the one before.
        pusher.withdraw(str(base), 3)
        serving(2)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        assert len(answered) > 10
        answer = requests.post(f'{server.url}/v1/models/{MODEL}/versions/2:predict', json=body,
                               timeout=60)
        assert answer.status_code == 200
        assert 'Traceback' not in server.log()
    finally:
        stop.set()
        killed.kill()
        killed.wait(timeout=60)
        for pipe in (killed.stdin, killed.stdout):
            pipe.close()
        server.stop()
