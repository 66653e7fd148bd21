"""Typed serving errors with TF Serving's canonical status codes.

Every failure on the shared serving path is a `ServingError` carrying one of
the canonical codes (the numbers TensorFlow, gRPC and TF Serving share). The
REST transport maps the code to the HTTP status TF Serving's HTTP server uses
(`tensorflow_serving/model_servers/http_server.cc`, `ToHTTPStatusCode`); the
gRPC transport uses the code as is.
"""

import enum
import re

import grpc


# The canonical codes (tensorflow/core/protobuf/error_codes.proto), as gRPC numbers them.
Code = enum.IntEnum('Code', {status.name: status.value[0] for status in grpc.StatusCode})


# TF Serving's ToHTTPStatusCode, verbatim in meaning.
_HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def http_status(code: Code) -> int:
    """HTTP status TF Serving answers for a canonical code."""
    return _HTTP_STATUS.get(Code(code), 500)


class ServingError(Exception):
    """A request or load failure with a canonical code and a user message."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving answers for this error."""
        return http_status(self.code)

    def with_hint(self, hint: str) -> 'ServingError':
        """Returns a copy whose message ends with `hint`."""
        if not hint:
            return self
        return ServingError(self.code, f'{self.message} Hint: {hint}')

    @property
    def client_message(self) -> str:
        """The message as sent to the client: what it echoes is kept short.

        Messages repeat what the request named (model, label, signature); a
        client that names a model with 60 KB would otherwise get 60 KB back, and
        over gRPC no message at all (status details above 16 KiB are dropped).
        """
        return _LONG_WORD.sub(_shorten, self.message)

    def status_string(self) -> str:
        """`CODE: message`, as absl::Status::ToString prints it."""
        return f'{self.code.name}: {self.message}'

    def __repr__(self):
        return f'ServingError({self.code.name}, {self.message!r})'


# A run of characters without a space longer than any the server writes itself.
_LONG_WORD = re.compile(r'[^\s]{513,}')


def _shorten(match: 're.Match') -> str:
    word = match.group()
    return f'{word[:100]}...({len(word)} characters)'


def invalid_argument(message: str) -> ServingError:
    """INVALID_ARGUMENT (HTTP 400)."""
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND (HTTP 404)."""
    return ServingError(Code.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    """FAILED_PRECONDITION (HTTP 400)."""
    return ServingError(Code.FAILED_PRECONDITION, message)


def internal(message: str) -> ServingError:
    """INTERNAL (HTTP 500)."""
    return ServingError(Code.INTERNAL, message)


def unavailable(message: str) -> ServingError:
    """UNAVAILABLE (HTTP 503)."""
    return ServingError(Code.UNAVAILABLE, message)


_TF_NOISE = (
    re.compile(r'^Graph execution error:\s*$'),
    re.compile(r'^Detected at node .* defined at \(most recent call last\):\s*$'),
    re.compile(r'^<stack traces unavailable>\s*$'),
    re.compile(r'^\s+File "'),
)
_OP_SUFFIX = re.compile(r'\s*\[Op:[^\]]*\]\s*$')


def clean_tf_message(message: str) -> str:
    """Drops the Python stack that TF attaches to graph execution errors.

    `tf.errors.OpError.message` from a `tf.function` starts with "Graph
    execution error:" and the Python frames where the failing op was defined;
    clients must see only the op's own message.
    """
    lines = message.splitlines()
    kept = []
    skip_code_line = False
    for line in lines:
        if skip_code_line:
            skip_code_line = False
            continue
        if any(pattern.match(line) for pattern in _TF_NOISE):
            skip_code_line = line.lstrip().startswith('File "')
            continue
        if line.strip():
            kept.append(line)
    text = '\n'.join(kept) if kept else message
    return _OP_SUFFIX.sub('', text)


def from_tf_error(error: Exception) -> ServingError:
    """Converts a `tf.errors.OpError` (or anything else) to a ServingError."""
    code = getattr(error, 'error_code', None)
    message = getattr(error, 'message', None) or str(error)
    try:
        code = Code(code)
    except (ValueError, TypeError):
        code = Code.INTERNAL
    if code == Code.OK:
        code = Code.UNKNOWN
    return ServingError(code, clean_tf_message(message))
