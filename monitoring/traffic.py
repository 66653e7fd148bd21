"""The reading side of the server's request log: which images a window holds.

The log is JSON lines in the format of serving_formats/request_log_format.py,
rotated by size as logging.handlers.RotatingFileHandler does (LOG is the
newest file, LOG.1 the one before, ... LOG.N the oldest). A window is the
images of the successful requests to one model version, each distinct image
(by content hash) once, at most `max_images` of them, the most recent.
"""

import dataclasses
import glob
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from serving_formats import request_log_format as fmt

_ROTATED = re.compile(r'\.(\d+)$')


class LogError(ValueError):
    """The log cannot be read: the message says what to fix."""


def log_files(request_log: str) -> List[str]:
    """The log and its rotations, oldest first (LOG.5 ... LOG.1, LOG), or a folder's files
    (each with its own rotations, by name).

    Raises:
      LogError: when the path does not exist.
    """
    if os.path.isdir(request_log):
        paths = [os.path.join(request_log, name) for name in os.listdir(request_log)
                 if os.path.isfile(os.path.join(request_log, name))]
    elif os.path.isfile(request_log):
        rotation = re.compile(re.escape(request_log) + r'\.\d+')
        paths = [request_log] + [p for p in glob.glob(glob.escape(request_log) + '.*')
                                 if rotation.fullmatch(p)]
    else:
        raise LogError(f'request log {request_log} does not exist')

    def age(path: str) -> Tuple[str, int]:
        match = _ROTATED.search(path)
        return (path[:match.start()], -int(match.group(1))) if match else (path, 0)
    return sorted(paths, key=age)


def read_records(paths: Sequence[str]) -> Tuple[List[Dict[str, Any]], int]:
    """(every record of the files in order, how many lines were not a JSON object)."""
    records, unreadable = [], 0
    for path in paths:
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    records.append(record)
                else:
                    unreadable += 1
    return records, unreadable


@dataclasses.dataclass
class Window:
    """The images to check, oldest first, and what was left out of them.

    Each image is its log entry plus the record's `time`, `api` and `entrypoint`.
    """
    images: List[Dict[str, Any]]
    counts: Dict[str, int]
    first_time: Optional[str]
    last_time: Optional[str]


def select_window(records: Sequence[Dict[str, Any]], version: Optional[str], *,
                  max_images: int, unreadable_lines: int = 0) -> Window:
    """The window of a version's traffic (every version's when None).

    Counts, for the report: lines (records and unreadable lines), failed
    requests, requests to other versions, requests used, their images, repeats
    (an image already in the window), and older images left out beyond
    max_images.
    """
    counts = {'log lines': len(records) + unreadable_lines,
              'unreadable lines': unreadable_lines, 'failed requests': 0,
              'requests to other versions': 0, 'requests used': 0, 'images in them': 0,
              'repeated images': 0, 'older images left out': 0}
    by_hash: Dict[str, Dict[str, Any]] = {}
    for record in records:
        if record.get(fmt.STATUS) != fmt.OK:
            counts['failed requests'] += 1
            continue
        if version is not None and str(record.get(fmt.VERSION)) != version:
            counts['requests to other versions'] += 1
            continue
        counts['requests used'] += 1
        for image in record.get(fmt.IMAGES) or []:
            if not isinstance(image, dict):
                continue
            counts['images in them'] += 1
            entry = {**image, fmt.TIME: record.get(fmt.TIME), fmt.API: record.get(fmt.API),
                     fmt.ENTRYPOINT: record.get(fmt.ENTRYPOINT)}
            key = image.get(fmt.IMAGE_SHA256) or f'entry {counts["images in them"]}'
            if key in by_hash:
                counts['repeated images'] += 1
                by_hash.pop(key)       # keep its latest appearance, in its place in time
            by_hash[key] = entry
    images = list(by_hash.values())
    counts['older images left out'] = max(0, len(images) - max_images)
    images = images[len(images) - min(len(images), max_images):]
    times = sorted(str(i[fmt.TIME]) for i in images if i.get(fmt.TIME))
    return Window(images=images, counts=counts, first_time=times[0] if times else None,
                  last_time=times[-1] if times else None)
