"""Client for any TF Serving endpoint (ours or the real tensorflow/serving).

Sends image files as encoded bytes (never tensors) and prints the label and
its probability, one line per image:

    python -m serving.client --url http://127.0.0.1:8501 --model cats_dogs \\
        cat.jpg dog.jpg
    python -m serving.client --grpc 127.0.0.1:8500 --model cats_dogs --version_label stable \\
        cat.jpg

Output lines are `<path>\\t<label>\\t<probability>`. The REST path needs
only `requests`; the gRPC path imports tensorflow-serving-api (and so
TensorFlow) when used.
"""

import argparse
import base64
import dataclasses
import sys
from typing import Any, Dict, List, Optional, Sequence

from models import features


class ClientError(Exception):
    """The server answered with an error."""

    def __init__(self, status: Any, message: str):
        super().__init__(f'{status}: {message}')
        self.status = status
        self.message = message


@dataclasses.dataclass
class Prediction:
    """One image's result."""
    label: str
    probability: float
    probabilities: List[float]


def _prediction(label: Optional[str], probabilities: Sequence[float],
                class_names: Sequence[str]) -> Prediction:
    probabilities = [float(p) for p in probabilities]
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    if label is None:
        label = class_names[best] if best < len(class_names) else str(best)
    return Prediction(label, probabilities[best], probabilities)


class RestClient:
    """TF Serving's REST predict API."""

    def __init__(self, url: str, model_name: str, *,
                 version: Optional[int] = None, version_label: Optional[str] = None,
                 signature_name: str = '', timeout: float = 30.0,
                 class_names: Sequence[str] = ()):
        """Args:
          url: server root, e.g. http://127.0.0.1:8501.
          model_name: the served model's name.
          version: a version number, or
          version_label: a version label such as 'stable' (not both).
          signature_name: '' for serving_default.
          timeout: seconds per request.
          class_names: class names, used only if the response has no label output.

        Raises:
          ValueError: for both version and version_label, or a URL that is not http.
        """
        import requests  # pylint: disable=import-outside-toplevel
        if version is not None and version_label:
            raise ValueError(f'Pass a version or a version label, not both: {version}, '
                             f'{version_label!r}')
        if not url.startswith(('http://', 'https://')):
            raise ValueError(f'REST url must start with http:// or https://, '
                             f'got {url!r}')
        path = f'/v1/models/{model_name}'
        if version is not None:
            path += f'/versions/{version}'
        elif version_label:
            path += f'/labels/{version_label}'
        self.model_url = url.rstrip('/') + path
        self.signature_name = signature_name
        self.timeout = timeout
        self.class_names = tuple(class_names)
        self._session = requests.Session()

    def _request(self, method: str, url: str, **kwargs) -> Dict[str, Any]:
        import requests  # pylint: disable=import-outside-toplevel
        try:
            response = self._session.request(method, url, timeout=self.timeout,
                                             **kwargs)
        except requests.RequestException as error:
            raise ClientError('connection', str(error)) from None
        try:
            doc = response.json()
        except ValueError:
            doc = {'error': response.text}
        if response.status_code != 200:
            raise ClientError(response.status_code,
                              doc.get('error', response.text)
                              if isinstance(doc, dict) else response.text)
        return doc

    def status(self) -> Dict[str, Any]:
        """GET the model's status JSON."""
        return self._request('GET', self.model_url)

    def metadata(self) -> Dict[str, Any]:
        """GET the model's metadata JSON."""
        return self._request('GET', self.model_url + '/metadata')

    def predict(self, images: Sequence[bytes]) -> List[Prediction]:
        """One request with every image; one Prediction per image."""
        body: Dict[str, Any] = {'instances': [
            {'b64': base64.b64encode(image).decode('ascii')}
            for image in images]}
        if self.signature_name:
            body['signature_name'] = self.signature_name
        doc = self._request('POST', self.model_url + ':predict', json=body)
        results = []
        for row in doc['predictions']:
            if isinstance(row, dict):
                results.append(_prediction(
                    row.get(features.CLASS_NAME_OUTPUT),
                    row[features.PROBABILITIES_OUTPUT], self.class_names))
            else:
                results.append(_prediction(None, row, self.class_names))
        return results

    def close(self) -> None:
        """Closes the HTTP session."""
        self._session.close()


class GrpcClient:
    """TF Serving's gRPC PredictionService."""

    def __init__(self, target: str, model_name: str, *,
                 version: Optional[int] = None, version_label: Optional[str] = None,
                 signature_name: str = '', timeout: float = 30.0,
                 class_names: Sequence[str] = ()):
        """Args as RestClient's; `target` is host:port of the gRPC server.

        Raises:
          ValueError: for both version and version_label.
        """
        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import prediction_service_pb2_grpc
        if version is not None and version_label:
            raise ValueError(f'Pass a version or a version label, not both: {version}, '
                             f'{version_label!r}')
        self.model_name = model_name
        self.version = version
        self.version_label = version_label
        self.signature_name = signature_name
        self.timeout = timeout
        self.class_names = tuple(class_names)
        self._channel = grpc.insecure_channel(target, options=[
            ('grpc.max_receive_message_length', 64 * 2**20),
            ('grpc.max_send_message_length', 64 * 2**20)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
            self._channel)

    def _spec(self, spec) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label
        if self.signature_name:
            spec.signature_name = self.signature_name

    def predict(self, images: Sequence[bytes]) -> List[Prediction]:
        """One Predict call with every image; one Prediction per image."""
        import grpc  # pylint: disable=import-outside-toplevel
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        request.inputs[features.SERVING_INPUT].CopyFrom(
            tf.make_tensor_proto(list(images), dtype=tf.string))
        try:
            response = self._stub.Predict(request, self.timeout)
        except grpc.RpcError as error:
            raise ClientError(error.code().name, error.details()) from None
        probabilities = tf.make_ndarray(
            response.outputs[features.PROBABILITIES_OUTPUT])
        class_names = None
        if features.CLASS_NAME_OUTPUT in response.outputs:
            class_names = [v.decode('utf-8') for v in tf.make_ndarray(
                response.outputs[features.CLASS_NAME_OUTPUT])]
        return [_prediction(class_names[i] if class_names else None, row, self.class_names)
                for i, row in enumerate(probabilities)]

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()


def predict_files(client, paths: Sequence[str], *,
                  batch_size: int = 1) -> List[Prediction]:
    """Sends files `batch_size` per request; one Prediction per file.

    Raises:
      ValueError: for a batch size below 1.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    results: List[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = []
        for path in chunk:
            with open(path, 'rb') as handle:
                images.append(handle.read())
        results.extend(client.predict(images))
    return results


def format_line(path: str, prediction: Prediction) -> str:
    """`<path>\\t<label>\\t<probability with 6 decimals>`."""
    return f'{path}\t{prediction.label}\t{prediction.probability:.6f}'


def main(argv: Optional[List[str]] = None) -> int:
    """CLI; returns the exit code (1 on a server error)."""
    parser = argparse.ArgumentParser(
        prog='python -m serving.client',
        description='Classify image files with a TF Serving model.')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--url', help='REST root, e.g. http://127.0.0.1:8501')
    target.add_argument('--grpc', help='gRPC host:port, e.g. 127.0.0.1:8500')
    parser.add_argument('--model', required=True, help='Model name.')
    route = parser.add_mutually_exclusive_group()
    route.add_argument('--version', type=int, default=None)
    route.add_argument('--version_label', default=None, help="Version label, e.g. 'stable'.")
    parser.add_argument('--signature_name', default='')
    parser.add_argument('--batch_size', type=int, default=1,
                        help='Images per request.')
    parser.add_argument('--timeout', type=float, default=30.0,
                        help='Seconds per request.')
    parser.add_argument('images', nargs='+', help='Image files.')
    args = parser.parse_args(argv)
    kwargs = dict(version=args.version, version_label=args.version_label,
                  signature_name=args.signature_name, timeout=args.timeout)
    try:
        client = (RestClient(args.url, args.model, **kwargs) if args.url
                  else GrpcClient(args.grpc, args.model, **kwargs))
    except ValueError as error:
        parser.error(str(error))
    try:
        results = predict_files(client, args.images, batch_size=args.batch_size)
    except ClientError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except OSError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    finally:
        client.close()
    for path, prediction in zip(args.images, results):
        print(format_line(path, prediction))
    return 0


if __name__ == '__main__':
    sys.exit(main())
