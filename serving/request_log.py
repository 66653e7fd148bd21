"""Opt-in, sampled JSON-lines log of prediction requests.

One line per sampled predict/classify/regress request, errors included, in
the format of serving_formats/request_log_format.py (which the monitor reads).

`images` describes each encoded image of the request (the serving input, a
`*_bytes` string input, or the `image` feature of a classify/regress
Example): its byte size, SHA-256, decoded size read from the image header
(upright, as the model sees it: models/image_header.py),
and the model's label and score for it. The image bytes themselves are
written only with `include_image_bytes` (as base64 under `b64`). This is the
record a drift check compares with the training statistics.

Files rotate by size (logging.handlers.RotatingFileHandler), so the log is
bounded by max_bytes * (backup_count + 1). Paths are local files.
"""

import base64
import datetime
import hashlib
import json
import logging
import logging.handlers
import random
import threading
from typing import Any, Dict, Optional

from models import image_header
from serving_formats import request_log_format as fmt


def image_info(data: bytes, *, include_bytes: bool = False) -> Dict[str, Any]:
    """Byte size, SHA-256 and header size (width, height) of an encoded image.

    The size comes from the image header (no full decode); it is null when
    the bytes are not an image whose header can be read (models/image_header.py).
    """
    info: Dict[str, Any] = {
        fmt.IMAGE_BYTES: len(data),
        fmt.IMAGE_SHA256: hashlib.sha256(data).hexdigest(),
        fmt.IMAGE_WIDTH: None,
        fmt.IMAGE_HEIGHT: None,
    }
    try:
        header = image_header.read(data)
        info[fmt.IMAGE_WIDTH], info[fmt.IMAGE_HEIGHT] = header.upright_size
    except image_header.BadImageError:
        pass
    if include_bytes:
        info[fmt.IMAGE_B64] = base64.b64encode(data).decode('ascii')
    return info


class RequestLog:
    """Writes sampled request records as JSON lines with size rotation."""

    def __init__(self, path: str, *, sample_rate: float = 1.0,
                 seed: Optional[int] = None, max_bytes: int = 100 * 2**20,
                 backup_count: int = 5, include_image_bytes: bool = False):
        """Opens the log (the file is created on the first record).

        Args:
          path: local file path.
          sample_rate: fraction of requests logged, in [0, 1].
          seed: seeds the sampler, so which requests are logged is
            reproducible for a given arrival order.
          max_bytes: rotate when the file would exceed this size.
          backup_count: rotated files kept (path.1 ... path.N).
          include_image_bytes: also write each image's bytes (base64).

        Raises:
          ValueError: for a rate outside [0, 1] or non-positive sizes.
        """
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f'sample_rate must be in [0, 1], got {sample_rate}')
        if max_bytes <= 0:
            raise ValueError(f'max_bytes must be > 0, got {max_bytes}')
        if backup_count < 0:
            raise ValueError(f'backup_count must be >= 0, got {backup_count}')
        self.path = path
        self.sample_rate = sample_rate
        self.include_image_bytes = include_image_bytes
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count,
            encoding='utf-8', delay=True)
        self._handler.setFormatter(logging.Formatter('%(message)s'))

    def should_sample(self) -> bool:
        """Draws the sampling decision for the next request."""
        with self._lock:
            # Always draw, so the decisions depend only on the arrival order.
            return self._random.random() < self.sample_rate

    def write(self, record: Dict[str, Any]) -> None:
        """Writes one record; `time` is added when missing."""
        record.setdefault(fmt.TIME, datetime.datetime.now(
            datetime.timezone.utc).isoformat().replace('+00:00', 'Z'))
        # The handler itself (its lock, rotation and file), without a logger: no
        # process-wide logger registry entry per RequestLog.
        self._handler.handle(logging.makeLogRecord(
            {'msg': json.dumps(record, sort_keys=True, allow_nan=True),
             'levelno': logging.INFO, 'levelname': 'INFO'}))

    def close(self) -> None:
        """Flushes and closes the file."""
        self._handler.close()
