"""Staging folders in a model's serving folder, named after the process that writes them.

A push copies the model into `<base>/.staging-<version>-<pid>@<host>-<start>-<token>`
(hidden: TF Serving only loads integer-named folders) and renames it to `<base>/<version>`.
The name says who writes it: the writer's PID, host and process start time (the time
tells a reused PID apart). A push that is killed leaves its folder behind; the next
push on the same host sees that its writer is gone and removes it at once. A folder
whose writer cannot be checked (another host) goes once it is STALE_STAGING_SECONDS old.
"""

import dataclasses
import os
import re
import socket
import time
import uuid
from typing import List, Optional

import psutil
import tensorflow as tf
from absl import logging

STAGING_PREFIX = '.staging-'
# A staging folder whose writer cannot be checked (written from another host) is
# taken as abandoned once this old (seconds since its last change).
STALE_STAGING_SECONDS = 3600
# Process start times are recorded in hundredths of a second (psutil's resolution on
# Linux); a process whose start time differs by more is another one with the same PID.
_START_TOLERANCE_SECONDS = 0.05

_NAME = re.compile(r'^\.staging-(?P<version>\d+)-(?P<pid>\d+)@(?P<host>[^/@]+)-'
                   r'(?P<start>\d+)-(?P<token>[0-9a-f]{8})$')


@dataclasses.dataclass(frozen=True)
class Writer:
    """The process that writes a staging folder."""
    pid: int
    host: str
    start: float   # the process's start time, seconds since the epoch

    def __str__(self) -> str:
        return f'pid {self.pid} on {self.host}'


def this_process() -> Writer:
    """The calling process as a Writer."""
    return Writer(os.getpid(), socket.gethostname(), psutil.Process().create_time())


def staging_name(version: int, writer: Optional[Writer] = None) -> str:
    """A new staging folder name for `version`, naming its writer (default: this process)."""
    writer = writer or this_process()
    return (f'{STAGING_PREFIX}{version}-{writer.pid}@{writer.host}-'
            f'{round(writer.start * 100)}-{uuid.uuid4().hex[:8]}')


def writer_of(name: str) -> Optional[Writer]:
    """The writer a staging folder's name records, or None (not a name staging_name made)."""
    match = _NAME.match(name)
    if not match:
        return None
    return Writer(int(match['pid']), match['host'], int(match['start']) / 100)


def is_alive(writer: Writer) -> Optional[bool]:
    """Whether the writer still runs; None when this host cannot tell (another host)."""
    if writer.host != socket.gethostname():
        return None
    try:
        started = psutil.Process(writer.pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return abs(started - writer.start) <= _START_TOLERANCE_SECONDS


def is_staging(name: str) -> bool:
    """Whether a folder name in a serving folder is a staging folder."""
    return name.startswith(STAGING_PREFIX)


def remove_abandoned(base_directory: str, now: Optional[float] = None) -> List[str]:
    """Removes staging folders left by pushes that died; returns their paths.

    A folder goes when its writer is gone (checked on this host), or, when that cannot
    be checked, once it is older than STALE_STAGING_SECONDS.

    Args:
      base_directory: a model's folder in the serving directory (local).
      now: the current time (seconds since the epoch), for tests.

    Returns:
      The removed folders.
    """
    now = time.time() if now is None else now
    removed = []
    if not os.path.isdir(base_directory):
        return removed
    for name in sorted(os.listdir(base_directory)):
        if not is_staging(name):
            continue
        path = os.path.join(base_directory, name)
        writer = writer_of(name)
        alive = is_alive(writer) if writer else None
        try:
            old = now - os.path.getmtime(path) > STALE_STAGING_SECONDS
        except FileNotFoundError:   # its writer finished meanwhile
            continue
        if alive is False or (alive is None and old):
            why = f'its writer ({writer}) is gone' if alive is False else 'it is old'
            logging.warning('Removing %s, left by an interrupted push: %s', path, why)
            tf.io.gfile.rmtree(path)
            removed.append(path)
    return removed
