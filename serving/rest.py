"""TF Serving's REST API on tornado, over the shared serving path.

Routes, matched as TF Serving matches them (case-insensitive regexes from
`tensorflow_serving/model_servers/http_rest_api_util.cc`):

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    predict
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify   classify
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:regress    regress

Beside them, not part of TF Serving's API:

    GET /monitoring/prometheus/metrics   Prometheus text format
    GET /healthz                         liveness: 200 while the process runs
    GET /readyz                          readiness: 200 once every model has
                                         an AVAILABLE (loaded, warmed) version

Every error is `{"error": "..."}` with TF Serving's HTTP status; handler
crashes become a 500 with a generic message, never a stack trace. Bodies
over the size limit get 413.
"""

import asyncio
import concurrent.futures
import logging
import re
from typing import Any, Dict, Optional, Tuple
import urllib.parse

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
import tornado.httpserver
import tornado.netutil
import tornado.web

from serving import core as core_lib
from serving import errors
from serving import json_tensor

_PREDICTION_RE = re.compile(
    r'(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?'
    r':(classify|regress|predict)')
_STATUS_RE = re.compile(
    r'(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?'
    r'(?:/(metadata))?')
_MAX_INT64 = 2**63 - 1
METRICS_PATH = '/monitoring/prometheus/metrics'
LIVENESS_PATH = '/healthz'
READINESS_PATH = '/readyz'


def status_to_json(response) -> Dict[str, Any]:
    """GetModelStatusResponse as TF Serving writes it (snake_case, defaults)."""
    return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def metadata_to_json(response) -> Dict[str, Any]:
    """GetModelMetadataResponse as TF Serving's REST API writes it."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[core_lib.SIGNATURE_DEF_FIELD].Unpack(signature_map)
    options = dict(preserving_proto_field_name=True,
                   including_default_value_fields=True)
    return {
        'model_spec': json_format.MessageToDict(response.model_spec, **options),
        'metadata': {core_lib.SIGNATURE_DEF_FIELD: json_format.MessageToDict(
            signature_map, **options)},
    }


class _JsonHandler(tornado.web.RequestHandler):
    """Writes JSON; errors as {"error": ...}, never a traceback."""

    def set_default_headers(self):
        self.set_header('Content-Type', 'application/json')

    def send_json(self, status: int, doc: Any) -> None:
        self.set_status(status)
        self.finish(json_tensor.dumps(doc))

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc_info = kwargs.get('exc_info')
        if exc_info and isinstance(exc_info[1], tornado.web.HTTPError):
            message = exc_info[1].log_message or self._reason
        elif status_code >= 500:
            message = 'Internal error'
        self.set_header('Content-Type', 'application/json')
        self.finish(json_tensor.dumps({'error': message}))


class _NotFoundHandler(_JsonHandler):

    def prepare(self):
        self.send_json(404, {'error': f'Not found: {self.request.path}'})


class _LivenessHandler(_JsonHandler):

    def get(self):
        self.send_json(200, {'status': 'alive'})


class _ReadinessHandler(_JsonHandler):

    def initialize(self, server: 'RestServer'):
        self._server = server

    def get(self):
        ready, detail = self._server.core.readiness()
        self.send_json(200 if ready else 503, {'ready': ready, 'models': detail})


class _MetricsHandler(tornado.web.RequestHandler):

    def initialize(self, server: 'RestServer'):
        self._server = server

    def get(self):
        from serving import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
        self.set_header('Content-Type', metrics_lib.CONTENT_TYPE)
        self.finish(self._server.core.metrics.exposition())


@tornado.web.stream_request_body
class _ApiHandler(_JsonHandler):
    """/v1/models...: parse as TF Serving does, run on the worker pool."""

    SUPPORTED_METHODS = ('GET', 'POST', 'PUT', 'DELETE', 'PATCH')

    def initialize(self, server: 'RestServer'):
        self._server = server
        self._chunks = []
        self._size = 0
        self._too_large = False

    def prepare(self):
        limit = self._server.max_body_bytes
        length = self.request.headers.get('Content-Length')
        if length is not None and length.isdigit() and int(length) > limit:
            # The body is still read (and dropped, see data_received) so the
            # client can read the 413; past the server's cap tornado closes
            # the connection instead.
            self._too_large = True

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._server.max_body_bytes:
            self._too_large = True
            self._chunks = []
        elif not self._too_large:
            self._chunks.append(chunk)

    async def get(self):
        await self._process('GET')

    async def post(self):
        await self._process('POST')

    async def put(self):
        await self._process('PUT')

    async def delete(self):
        await self._process('DELETE')

    async def patch(self):
        await self._process('PATCH')

    async def _process(self, method: str) -> None:
        path = self.request.path
        kind, spec, error = _parse_path(method, path)
        call = self._server.core.begin(kind, core_lib.REST, spec.name)
        if error is None and self._too_large:
            error = errors.ServingError(
                errors.Code.RESOURCE_EXHAUSTED,
                f'Request body of {max(self._size, 0)} bytes is larger than the '
                f'limit of {self._server.max_body_bytes} bytes').with_hint(
                    'send fewer or smaller images per request, or raise '
                    '--rest_api_max_body_bytes.')
            status = 413
        else:
            status = None
        if error is None and self._server.stopping:
            error = errors.unavailable('The server is shutting down').with_hint(
                'retry on another replica.')
        if error is not None:
            self._reply_error(call, error, status)
            return
        body = b''.join(self._chunks)
        work = asyncio.get_running_loop().run_in_executor(
            self._server.executor, _handle, self._server.core, call, kind, spec,
            body)
        try:
            status, doc, error = await asyncio.wait_for(
                asyncio.shield(work), self._server.timeout_seconds)
        except asyncio.TimeoutError:
            error = errors.ServingError(errors.Code.DEADLINE_EXCEEDED,
                                        'Deadline Exceeded')
            self._reply_error(call, error, None)
            return
        except Exception:  # pylint: disable=broad-except
            logging.exception('REST %s %s failed', method, path)
            error = errors.internal('Internal error')
            self._reply_error(call, error, None)
            return
        call.http_status = status
        self._server.core.finish(call, error)
        self.send_json(status, doc)

    def _reply_error(self, call, error: errors.ServingError,
                     status: Optional[int]) -> None:
        status = status or error.http_status
        call.http_status = status
        self._server.core.finish(call, error)
        self.send_json(status, {'error': error.message})


def _parse_path(method: str, path: str
                ) -> Tuple[str, core_lib.ModelSpec, Optional[errors.ServingError]]:
    """(kind, spec, error) from the URL, as TF Serving's ParseModelInfo."""
    malformed = errors.invalid_argument(f'Malformed request: {method} {path}')
    if method == 'POST':
        match = _PREDICTION_RE.fullmatch(path)
    elif method == 'GET':
        match = _STATUS_RE.fullmatch(path)
    else:
        match = None
    if match is None:
        hint = ''
        if method == 'POST' and _STATUS_RE.fullmatch(path):
            hint = ('POST needs a method: append :predict, :classify or '
                    ':regress to the model URL.')
        elif method == 'GET' and _PREDICTION_RE.fullmatch(path):
            hint = ':predict, :classify and :regress take POST.'
        elif method not in ('GET', 'POST'):
            hint = 'this API takes GET (status, metadata) and POST (inference).'
        return core_lib.STATUS, core_lib.ModelSpec(''), malformed.with_hint(hint)
    name = urllib.parse.unquote(match.group(1) or '')
    version_text, label = match.group(2), match.group(3)
    label = urllib.parse.unquote(label) if label else None
    spec_version = None
    if version_text:
        spec_version = int(version_text)
        if spec_version > _MAX_INT64:
            return core_lib.STATUS, core_lib.ModelSpec(name), errors.invalid_argument(
                f'Failed to convert version: {version_text} to numeric.')
    spec = core_lib.ModelSpec(name, spec_version, label)
    if method == 'POST':
        kind = match.group(4)
        if kind not in (core_lib.PREDICT, core_lib.CLASSIFY, core_lib.REGRESS):
            return core_lib.PREDICT, spec, malformed.with_hint(
                'the method must be lower case: :predict, :classify, :regress.')
        return kind, spec, None
    if not name:
        return core_lib.STATUS, spec, errors.invalid_argument(
            'Missing model name in request.')
    subresource = match.group(4)
    if subresource and subresource != 'metadata':
        return core_lib.STATUS, spec, malformed
    return (core_lib.METADATA if subresource else core_lib.STATUS), spec, None


def _handle(core: core_lib.ServingCore, call: core_lib.Call, kind: str,
            spec: core_lib.ModelSpec, body: bytes
            ) -> Tuple[int, Any, Optional[errors.ServingError]]:
    """Runs one parsed request; returns (HTTP status, JSON doc, error)."""
    try:
        if kind == core_lib.STATUS:
            return 200, status_to_json(core.status(spec)), None
        if kind == core_lib.METADATA:
            return 200, metadata_to_json(core.metadata(spec)), None
        doc = json_tensor.parse_json(body)
        signature = json_tensor.signature_name(doc)
        if kind == core_lib.PREDICT:
            _, _, outputs, decoded = core.predict(
                call, spec, signature,
                lambda signature_def: json_tensor.decode_predict(
                    doc, {name: info.dtype
                          for name, info in signature_def.inputs.items()},
                    signature))
            return 200, json_tensor.encode_predict(
                outputs, row_format=decoded.row_format), None
        if kind == core_lib.CLASSIFY:
            _, _, results = core.classify(
                call, spec, signature,
                lambda: json_tensor.decode_examples(doc, kind))
            return 200, json_tensor.encode_classification(results), None
        _, _, values = core.regress(
            call, spec, signature, lambda: json_tensor.decode_examples(doc, kind))
        return 200, json_tensor.encode_regression(values), None
    except errors.ServingError as error:
        return error.http_status, {'error': error.message}, error


_PROBES = (LIVENESS_PATH, READINESS_PATH)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, with health probes at DEBUG: a 503 from /readyz while
    models load is the probe's answer, not a server error."""
    status = handler.get_status()
    if handler.request.path in _PROBES:
        level = logging.DEBUG
    else:
        level = (logging.INFO if status < 400 else
                 logging.WARNING if status < 500 else logging.ERROR)
    request = handler.request
    logging.getLogger('tornado.access').log(
        level, '%d %s %s (%s) %.2fms', status, request.method, request.uri, request.remote_ip,
        1000.0 * request.request_time())


class RestServer:
    """The tornado HTTP server of one model server process."""

    def __init__(self, core: core_lib.ServingCore, *, host: str = '127.0.0.1',
                 port: int = 8501, num_threads: int = 8,
                 timeout_ms: int = 30000, max_body_bytes: int = 32 * 2**20):
        if max_body_bytes <= 0:
            raise ValueError(f'max_body_bytes must be > 0, got {max_body_bytes}')
        if num_threads <= 0:
            raise ValueError(f'num_threads must be > 0, got {num_threads}')
        self.core = core
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_ms / 1000 if timeout_ms > 0 else None
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=num_threads, thread_name_prefix='rest')
        self._http_server: Optional[tornado.httpserver.HTTPServer] = None
        self.stopping = False

    def make_app(self) -> tornado.web.Application:
        """All routes, in one place."""
        kwargs = {'server': self}
        return tornado.web.Application(
            [
                (r'(?i)/v1/.*', _ApiHandler, kwargs),
                (METRICS_PATH, _MetricsHandler, kwargs),
                (LIVENESS_PATH, _LivenessHandler),
                (READINESS_PATH, _ReadinessHandler, kwargs),
            ],
            default_handler_class=_NotFoundHandler,
            serve_traceback=False, compress_response=False, log_function=_log_request)

    def start(self) -> int:
        """Binds and starts serving on the running IOLoop; returns the port."""
        # The connection limit is above ours, so an oversized body is read
        # and dropped and the client gets a 413 instead of a reset.
        self._http_server = tornado.httpserver.HTTPServer(
            self.make_app(), max_body_size=max(4 * self.max_body_bytes, 2**26),
            idle_connection_timeout=3600)
        sockets = tornado.netutil.bind_sockets(self.port, address=self.host)
        self._http_server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish, closes."""
        self.stopping = True
        if self._http_server is not None:
            self._http_server.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.executor.shutdown, True)
        if self._http_server is not None:
            await self._http_server.close_all_connections()
