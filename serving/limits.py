"""Every limit the server puts on what a client sends: name, flag, default, answer.

One place for all of them (STYLE: "one module that holds every input limit with
its flag"). `Limits` is the frozen set of values one server runs with;
`add_flags` puts each on the command line, `from_args` reads them back, and
`LIMITS` says for each what it bounds and what a client gets when it crosses
it (docs/serving.md's table is checked against it by a test).

Why these defaults: an image is refused above the pixel cap ingestion uses
(`models.features.MAX_PIXELS`), so what the pipeline would not train on is not
decoded when served either; one request may decode two such images' worth, and
the whole server decodes at most that much at once, so a burst of bombs from
many connections costs the same memory as one (about 3 bytes a pixel: 0.6 GB).
Tensors: a declared shape may ask for at most as many elements as 32 MiB of
float32 holds, whatever the client actually sent (TensorFlow pads short
tensors, which is how a 40-byte request asked for 2^31 strings). HTTP: the
body cap is the one the server always had; URL and header caps are common
proxy values; the timeouts are what a slow client on a phone link needs, not
TF Serving's hour.
"""

import argparse
import dataclasses
import os
import posixpath
from typing import List, NamedTuple, Optional, Sequence, Tuple

from models import features

# numpy arrays hold at most this many dimensions; a deeper JSON nesting cannot
# be a tensor, so it is refused before it is walked.
MAX_TENSOR_RANK = 32


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits of one server process (defaults: the flags' defaults)."""
    # Images (any string value whose bytes start like a JPEG, PNG, GIF or BMP).
    max_image_pixels: int = features.MAX_PIXELS
    max_image_frames: int = 1000
    max_request_pixels: int = 2 * features.MAX_PIXELS
    max_pixels_in_flight: int = 2 * features.MAX_PIXELS
    # Tensors and batches.
    max_instances_per_request: int = 1000
    max_instances_per_call: int = 64
    max_tensor_elements: int = 8 * 2**20
    # Transports.
    rest_api_max_body_bytes: int = 32 * 2**20
    rest_api_max_url_bytes: int = 8 * 2**10
    rest_api_max_header_bytes: int = 64 * 2**10
    grpc_max_message_bytes: int = 32 * 2**20
    # Time.
    rest_api_timeout_in_ms: int = 30000
    rest_api_header_timeout_seconds: float = 30.0
    rest_api_idle_timeout_seconds: float = 60.0
    rest_api_body_timeout_seconds: float = 60.0
    # Where HandleReloadConfigRequest may point a model; empty: the parents of
    # the start-up config's base paths (see allowed_roots()).
    model_base_path_roots: Tuple[str, ...] = ()

    def __post_init__(self):
        for limit in LIMITS:
            value = getattr(self, limit.name)
            if limit.name == 'model_base_path_roots':
                continue
            if limit.name == 'rest_api_timeout_in_ms':
                continue   # <= 0: no deadline, as in TF Serving
            if value <= 0:
                raise ValueError(f'--{limit.name} must be > 0, got {value}')
        if self.max_request_pixels < self.max_image_pixels:
            raise ValueError(
                f'--max_request_pixels ({self.max_request_pixels}) must be at '
                f'least --max_image_pixels ({self.max_image_pixels})')
        if self.max_pixels_in_flight < self.max_request_pixels:
            raise ValueError(
                f'--max_pixels_in_flight ({self.max_pixels_in_flight}) must be '
                f'at least --max_request_pixels ({self.max_request_pixels})')

    @property
    def rest_deadline_seconds(self) -> Optional[float]:
        """The REST deadline in seconds, or None for none."""
        if self.rest_api_timeout_in_ms <= 0:
            return None
        return self.rest_api_timeout_in_ms / 1000

    @property
    def rest_api_header_hard_cap_bytes(self) -> int:
        """Request line and headers above this are dropped unanswered.

        Up to it the server reads them, so that it can answer 414 or 431 with a
        message; beyond it tornado closes the connection (its buffer must end
        somewhere).
        """
        return max(16 * self.rest_api_max_header_bytes, 2**20)

    @property
    def rest_api_body_hard_cap_bytes(self) -> int:
        """A larger body is answered 413 and the connection closed unread.

        Up to it an oversized body is read and dropped after the 413, so a
        client that sends its whole body before reading (most do) sees the
        answer instead of a reset; --rest_api_body_timeout_seconds bounds the
        time that takes.
        """
        return max(16 * self.rest_api_max_body_bytes, 2**30)

    def allowed_roots(self, config) -> Tuple[str, ...]:
        """The model roots a reload may use: the flag's, else the config's parents.

        Args:
          config: the start-up ModelServerConfig.
        """
        if self.model_base_path_roots:
            return tuple(normalize_path(root) for root in self.model_base_path_roots)
        parents = []
        for model in config.model_config_list.config:
            parent = posixpath.dirname(normalize_path(model.base_path))
            if parent not in parents:
                parents.append(parent)
        return tuple(parents)


class Limit(NamedTuple):
    """One limit as a flag: what it bounds and what crossing it gives."""
    name: str
    type: type
    help: str
    answer: str   # what the client gets (REST / gRPC)


LIMITS: Tuple[Limit, ...] = (
    Limit('max_image_pixels', int,
          'Largest image (width x height x frames) decoded for a request; read '
          'from the header before anything is decoded.',
          '400 / INVALID_ARGUMENT naming the input, the image and the limit'),
    Limit('max_image_frames', int, 'Most frames of one animated image (GIF).',
          '400 / INVALID_ARGUMENT'),
    Limit('max_request_pixels', int,
          'Most pixels all images of one request may decode together.',
          '400 / INVALID_ARGUMENT'),
    Limit('max_pixels_in_flight', int,
          'Most pixels the whole server decodes at once; requests over it wait '
          'for the others (until their deadline).',
          'waits; 504 / DEADLINE_EXCEEDED if the deadline passes first'),
    Limit('max_instances_per_request', int,
          'Most instances (examples, the first dimension) of one request.',
          '400 / INVALID_ARGUMENT'),
    Limit('max_instances_per_call', int,
          'Instances run through the model at once: larger requests run in '
          'chunks of this size, and stop between chunks once the deadline has '
          'passed.', 'a request over its deadline: 504 / DEADLINE_EXCEEDED'),
    Limit('max_tensor_elements', int,
          'Most elements one input tensor may declare (its shape), whatever '
          'number of values was sent.', '400 / INVALID_ARGUMENT'),
    Limit('rest_api_max_body_bytes', int,
          'Largest REST request body (up to 16 times this, and at least 1 GiB, '
          'a larger body is read and dropped after the answer, so that a client '
          'that sends it whole before reading sees the answer).',
          '413 with a message, sent as soon as the size is known'),
    Limit('rest_api_max_url_bytes', int, 'Longest REST request URL.',
          '414 with a message'),
    Limit('rest_api_max_header_bytes', int,
          'Most bytes of REST request line and headers (up to 16 times this, '
          'and at least 1 MiB, they are read so the client gets an answer; '
          'beyond, the connection is closed).', '431 with a message'),
    Limit('grpc_max_message_bytes', int,
          'Largest gRPC message in either direction.',
          'RESOURCE_EXHAUSTED (from gRPC)'),
    Limit('rest_api_timeout_in_ms', int,
          'REST deadline (TF Serving\'s flag); <= 0 for none. gRPC requests '
          'use the client\'s deadline.',
          '504 / DEADLINE_EXCEEDED; the work stops at the next chunk'),
    Limit('rest_api_header_timeout_seconds', float,
          'Time from a request\'s first byte to the end of its headers.',
          '408, then the connection is closed'),
    Limit('rest_api_idle_timeout_seconds', float,
          'Time a connection may wait for its next request.',
          'the connection is closed (nothing was asked)'),
    Limit('rest_api_body_timeout_seconds', float,
          'Time to receive a request body.', 'the connection is closed'),
    Limit('model_base_path_roots', str,
          'Comma-separated directories under which HandleReloadConfigRequest '
          'may point a model\'s base_path; default: the parents of the '
          'start-up config\'s base paths. The config file itself is the '
          'operator\'s and is not restricted.',
          'PERMISSION_DENIED (outside), INVALID_ARGUMENT (relative path)'),
)


def _default_text(name: str) -> str:
    value = getattr(Limits(), name)
    if name == 'model_base_path_roots':
        return 'the start-up config\'s parents'
    return f'{value:,}' if isinstance(value, int) else f'{value:g}'


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per limit, in a group of its own."""
    group = parser.add_argument_group(
        'Limits on what clients send (docs/serving.md, "Limits")')
    defaults = Limits()
    for limit in LIMITS:
        if limit.name == 'model_base_path_roots':
            group.add_argument(f'--{limit.name}', default='', help=limit.help)
            continue
        group.add_argument(f'--{limit.name}', type=limit.type,
                           default=getattr(defaults, limit.name),
                           help=f'{limit.help} Default {_default_text(limit.name)}.')


def from_args(args: argparse.Namespace) -> Limits:
    """The Limits of parsed flags.

    Raises:
      ValueError: for a value out of range, naming the flag.
    """
    values = {limit.name: getattr(args, limit.name) for limit in LIMITS}
    roots = values['model_base_path_roots']
    values['model_base_path_roots'] = tuple(
        part.strip() for part in roots.split(',') if part.strip())
    return Limits(**values)


def normalize_path(path: str) -> str:
    """An absolute, '..'-free spelling of a local or URL-style (gs://) path."""
    if '://' in path:
        scheme, rest = path.split('://', 1)
        return f'{scheme}://{posixpath.normpath("/" + rest).lstrip("/")}'
    return os.path.realpath(path)


def outside_roots(path: str, roots: Sequence[str]) -> bool:
    """True when `path` (normalized) is not one of `roots` or below one."""
    path = normalize_path(path)
    return not any(path == root or path.startswith(root.rstrip('/') + '/')
                   for root in roots)


def table_rows() -> List[Tuple[str, str, str, str]]:
    """(flag, default, what it bounds, what the client gets): docs/serving.md."""
    return [(f'--{limit.name}', _default_text(limit.name), limit.help,
             limit.answer) for limit in LIMITS]


