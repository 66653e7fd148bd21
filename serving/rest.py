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
crashes become a 500 with a generic message, never a stack trace. What a
client sends is bounded (serving/limits.py): a URL over the limit gets 414,
headers 431, a body 413 (answered before the body is read, which is then read
and dropped so that the client sees the answer), headers that take too long
408; an idle connection is closed. The REST deadline becomes the request's:
its work stops at the next chunk once it has passed, or once the client has
gone.
"""

import asyncio
import concurrent.futures
import datetime
import logging
import re
import time
from typing import Any, Dict, Optional, Sequence, Tuple
import urllib.parse

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
import tornado.httpserver
import tornado.iostream
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
_MAX_INT64_DIGITS = len(str(_MAX_INT64))
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


@tornado.web.stream_request_body
class _BoundedHandler(tornado.web.RequestHandler):
    """Every route: URL, headers and body within the limits, or an answer.

    Bodies are streamed (never buffered whole by tornado); a route that takes
    none drops what it is sent.
    """

    takes_body = False

    def initialize(self, server: 'RestServer'):
        self._server = server
        self._chunks = []
        self._size = 0

    def prepare(self):
        limits = self._server.limits
        request = self.request
        if len(request.uri) > limits.rest_api_max_url_bytes:
            self._refuse(414, f'URL of {len(request.uri)} bytes is longer than '
                         f'the limit of {limits.rest_api_max_url_bytes} bytes '
                         '(--rest_api_max_url_bytes)')
            return
        header_bytes = len(request.method) + len(request.uri) + len(
            request.version) + sum(len(name) + len(value) + 4
                                   for name, value in request.headers.get_all())
        if header_bytes > limits.rest_api_max_header_bytes:
            self._refuse(431, f'Request headers of {header_bytes} bytes are '
                         'larger than the limit of '
                         f'{limits.rest_api_max_header_bytes} bytes '
                         '(--rest_api_max_header_bytes)')
            return
        length = request.headers.get('Content-Length', '')
        if length.isdigit() and int(length) > limits.rest_api_max_body_bytes:
            self._refuse_body(int(length))

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        if self._size > self._server.limits.rest_api_max_body_bytes:
            self._chunks = []
            self._refuse_body(self._size)
        elif self.takes_body:
            self._chunks.append(chunk)

    def _refuse_body(self, size: int) -> None:
        limit = self._server.limits.rest_api_max_body_bytes
        self._refuse(413, f'Request body of {"at least " if self._size else ""}'
                     f'{size} bytes is larger than the limit of {limit} bytes '
                     '(--rest_api_max_body_bytes)', hint=(
                         'send fewer or smaller images per request, or raise '
                         '--rest_api_max_body_bytes.'),
                     code=errors.Code.RESOURCE_EXHAUSTED)

    def _refuse(self, status: int, message: str, *, hint: str = '',
                code: errors.Code = errors.Code.INVALID_ARGUMENT) -> None:
        error = errors.ServingError(code, message).with_hint(hint)
        self.on_refused(status, error)
        self.set_status(status)
        self.set_header('Content-Type', 'application/json')
        self.finish(json_tensor.dumps({'error': error.client_message}))

    def on_refused(self, status: int, error: errors.ServingError) -> None:
        """Called before a limit's answer is sent (the API counts it)."""


class _JsonHandler(_BoundedHandler):
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
        super().prepare()
        if not self._finished:
            self.send_json(404, {'error': f'Not found: {self.request.path}'})


class _LivenessHandler(_JsonHandler):

    def get(self):
        self.send_json(200, {'status': 'alive'})


class _ReadinessHandler(_JsonHandler):

    async def get(self):
        # The gRPC probe may take a moment: off the event loop, and off the
        # request threads (they may all be busy with predictions).
        ready, models, ports = await asyncio.get_running_loop().run_in_executor(
            None, self._server.core.readiness)
        ports = dict(ports, rest='answering')
        self.send_json(200 if ready else 503,
                       {'ready': ready, 'models': models, 'ports': ports})


class _MetricsHandler(_BoundedHandler):

    def get(self):
        from serving import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
        self.set_header('Content-Type', metrics_lib.CONTENT_TYPE)
        self.finish(self._server.core.metrics.exposition())


class _ApiHandler(_JsonHandler):
    """/v1/models...: parse as TF Serving does, run on the worker pool."""

    SUPPORTED_METHODS = ('GET', 'POST', 'PUT', 'DELETE', 'PATCH')
    takes_body = True

    def initialize(self, server: 'RestServer'):
        super().initialize(server)
        self._gone = False

    def on_connection_close(self):
        self._gone = True

    def on_refused(self, status: int, error: errors.ServingError) -> None:
        _, spec, _ = _parse_path(self.request.method, self.request.path[:2048])
        call = self._server.core.begin(core_lib.STATUS, core_lib.REST, spec.name)
        call.http_status = status
        self._server.core.finish(call, error)

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
        if self._finished:   # refused while the body came in (413)
            return
        path = self.request.path
        kind, spec, error = _parse_path(method, path)
        call = self._server.core.begin(kind, core_lib.REST, spec.name)
        timeout = self._server.limits.rest_deadline_seconds
        if timeout is not None:
            call.deadline = time.monotonic() + timeout
        call.cancelled = lambda: self._gone
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
            # As asyncio.wait_for(asyncio.shield(work), timeout): past the deadline the
            # client is answered and the work goes on to its next check.
            if not await done_within(work, timeout):
                raise asyncio.TimeoutError()
            status, doc, error = work.result()
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
        self.send_json(status, {'error': error.client_message})


async def done_within(future: asyncio.Future, seconds: Optional[float]) -> bool:
    """Whether `future` is done within `seconds` (None: waits for it), leaving it running
    otherwise: as tornado.gen.with_timeout or asyncio.wait_for on a shielded future, with
    one timer and no second future chained to it (they took a good part of the event
    loop's time per request). Its exception, if any, is left to the caller."""
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_=None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, wake) if seconds is not None else None
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


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
        # int() refuses more than 4300 digits; no int64 has more than 19.
        if (len(version_text.lstrip('0')) > _MAX_INT64_DIGITS
                or int(version_text) > _MAX_INT64):
            shown = (version_text if len(version_text) <= 40 else
                     f'{version_text[:20]}...({len(version_text)} digits)')
            return core_lib.STATUS, core_lib.ModelSpec(name), errors.invalid_argument(
                f'Failed to convert version: {shown} to numeric.')
        spec_version = int(version_text)
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
        return error.http_status, {'error': error.client_message}, error


_PROBES = (LIVENESS_PATH, READINESS_PATH)
# A client's URL goes into the access log at most this long.
_LOGGED_URI_CHARS = 200


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
    uri = request.uri if len(request.uri) <= _LOGGED_URI_CHARS else (
        f'{request.uri[:_LOGGED_URI_CHARS]}...({len(request.uri)} bytes)')
    logging.getLogger('tornado.access').log(
        level, '%d %s %s (%s) %.2fms', status, request.method, uri, request.remote_ip,
        1000.0 * request.request_time())


class _HttpServer(tornado.httpserver.HTTPServer):
    """tornado's HTTP server with an idle timeout apart from the header timeout.

    tornado runs one timer from a connection's start (or its last response) to
    the end of the next request's headers. Here the wait for a request's first
    byte is the idle timeout (then the connection is closed quietly), and from
    that byte to the end of its headers the header timeout (then 408), so a
    client that trickles its headers is cut off sooner than an idle keep-alive.
    """

    def initialize(self, *args, idle_timeout: float = 60.0,  # pylint: disable=arguments-differ
                   header_timeout: float = 30.0, **kwargs):
        super().initialize(*args, **kwargs)
        self._idle_timeout = datetime.timedelta(seconds=idle_timeout)
        self._header_timeout = datetime.timedelta(seconds=header_timeout)
        # tornado's own bound on a request head (idle_connection_timeout, an hour) is
        # reached only after ours: not timed a second time for each request.
        if idle_timeout + header_timeout < self.conn_params.header_timeout:
            self.conn_params.header_timeout = None

    def handle_stream(self, stream, address) -> None:
        read_headers = stream.read_until_regex
        idle = self._idle_timeout.total_seconds()
        header = self._header_timeout

        async def read_request_head(regex, max_bytes=None):
            # A read that fails once the stream is closed here fails quietly (tornado
            # retrieves the StreamClosedError it sets).
            first = stream.read_bytes(1)
            if not await done_within(first, idle):
                stream.close()
                raise tornado.iostream.StreamClosedError() from None
            first = first.result()
            rest = read_headers(regex, max_bytes=(max_bytes - 1 if max_bytes else None))
            if not await done_within(rest, header.total_seconds()):
                body = json_tensor.dumps({'error': (
                    'Request headers not received within '
                    f'{header.total_seconds():g} s '
                    '(--rest_api_header_timeout_seconds)')}).encode()
                await stream.write(
                    b'HTTP/1.1 408 Request Timeout\r\nContent-Type: '
                    b'application/json\r\nConnection: close\r\n'
                    b'Content-Length: %d\r\n\r\n%s' % (len(body), body))
                stream.close()
                raise tornado.iostream.StreamClosedError() from None
            return first + rest.result()

        # The HTTP/1 connection reads each request's head through this.
        stream.read_until_regex = read_request_head
        super().handle_stream(stream, address)


class RestServer:
    """The tornado HTTP server of one model server process."""

    def __init__(self, core: core_lib.ServingCore, *, host: str = '127.0.0.1',
                 port: int = 8501, num_threads: int = 8,
                 metrics_paths: Sequence[str] = (METRICS_PATH,)):
        if num_threads <= 0:
            raise ValueError(f'num_threads must be > 0, got {num_threads}')
        self.core = core
        self.limits = core.limits
        self.metrics_paths = list(metrics_paths)
        self.host = host
        self.port = port
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
                (LIVENESS_PATH, _LivenessHandler, kwargs),
                (READINESS_PATH, _ReadinessHandler, kwargs),
            ] + [(re.escape(path), _MetricsHandler, kwargs)
                 for path in self.metrics_paths],
            default_handler_class=_NotFoundHandler,
            default_handler_args=kwargs,
            serve_traceback=False, compress_response=False, log_function=_log_request)

    def start(self) -> int:
        """Binds and starts serving on the running IOLoop; returns the port."""
        limits = self.limits
        # tornado's own caps sit above ours, so that up to them a client over
        # a limit reads an answer (414, 431, 413) instead of a reset.
        self._http_server = _HttpServer(
            self.make_app(),
            max_header_size=limits.rest_api_header_hard_cap_bytes,
            max_body_size=limits.rest_api_body_hard_cap_bytes,
            body_timeout=limits.rest_api_body_timeout_seconds,
            idle_timeout=limits.rest_api_idle_timeout_seconds,
            header_timeout=limits.rest_api_header_timeout_seconds)
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
