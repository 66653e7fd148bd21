"""The server's memory under hostile requests and bursts of large images.

Run by hand (never a test): prints numbers, asserts nothing.

    python bench/serving_memory.py --model_base_path /path/to/push/image_classifier

For the default allocator and for --tensorflow_system_allocator, starts the
server, then prints its RSS (MiB) when ready, after the refused requests of
tests/serving/test_hostile_clients.py (a 2^31-element shape, a 20000x20000 PNG,
a 100-frame 2000x2000 GIF, 30 PNGs of 10000x10000 in one request), and after
each of three requests of two 10000x10000 PNGs (the largest a request may
decode), and its peak (VmHWM).
"""

import argparse
import base64
import pathlib
import sys
import tempfile

import requests

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = 'bench'


def _status_mib(pid: int, key: str) -> float:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    return float('nan')


def run(base_path: str, extra, work: pathlib.Path) -> None:
    """One server: the requests and the RSS after each step."""
    import grpc  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
    from tests.serving import hostile_inputs  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel

    def b64(data: bytes) -> dict:
        return {'b64': base64.b64encode(data).decode('ascii')}

    server = server_process.ServerProcess(
        [f'--model_name={MODEL}', f'--model_base_path={base_path}',
         '--file_system_poll_wait_seconds=0'] + extra, work / 'server.log').start()
    server.wait_ready(timeout=300)
    pid = server.process.pid
    steps = []
    try:
        photo = sorted((PROJECT_ROOT.parent / 'shared' / 'datasets' / 'cats_vs_dogs' /
                        'validation' / 'cats').glob('*.jpg'))[0].read_bytes()
        url = f'{server.url}/v1/models/{MODEL}:predict'
        for _ in range(10):
            requests.post(url, json={'instances': [b64(photo)]}, timeout=60)
        steps.append(('ready, 10 photos', _status_mib(pid, 'VmRSS')))
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        proto = request.inputs['image_bytes']
        proto.CopyFrom(tf.make_tensor_proto([photo], dtype=tf.string))
        proto.tensor_shape.dim[0].size = 2**31
        try:
            stub.Predict(request, 60.0)
        except grpc.RpcError:
            pass
        channel.close()
        big = hostile_inputs.png_bomb(10000, 10000)
        for body in ([hostile_inputs.png_bomb(20000, 20000)],
                     [hostile_inputs.gif_bomb(2000, 2000, 100)], [big] * 30):
            requests.post(url, json={'instances': [b64(d) for d in body]}, timeout=120)
        steps.append(('refused bombs', _status_mib(pid, 'VmRSS')))
        for index in range(3):
            response = requests.post(url, json={'instances': [b64(big), b64(big)]},
                                     timeout=300)
            steps.append((f'2 x 10000x10000 #{index + 1} ({response.status_code})',
                          _status_mib(pid, 'VmRSS')))
        steps.append(('peak (VmHWM)', _status_mib(pid, 'VmHWM')))
    finally:
        server.stop()
    print(f'{" ".join(extra) or "default allocator"}: ' + ', '.join(
        f'{name} {mib:.0f}' for name, mib in steps), flush=True)


def main(argv=None) -> int:
    """Both allocators, one after the other."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    for extra in ([], ['--tensorflow_system_allocator']):
        with tempfile.TemporaryDirectory(prefix='serving_memory_') as work:
            run(args.model_base_path, extra, pathlib.Path(work))
    return 0


if __name__ == '__main__':
    sys.exit(main())
