"""A small file system that a test fills on purpose (a disk that runs full).

`tmpfs(path, size)` mounts a size-limited tmpfs at `path` for the duration of a
`with` block: writes past its size fail with ENOSPC, as on a full disk. Mounting
needs root with CAP_SYS_ADMIN (as on our machines and in CI); where the OS forbids
it, `MountForbidden` says why, and `limit_file_size(n)` is the other real way: a
subprocess started with it gets EFBIG for any write past n bytes in one file
(RLIMIT_FSIZE, with SIGXFSZ ignored so the write fails instead of killing it).
"""

import contextlib
import os
import pathlib
import resource
import signal
import subprocess
from typing import Callable, Iterator

PAGE = 4096


class MountForbidden(RuntimeError):
    """This process may not mount a file system here."""


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, size_bytes: int) -> Iterator[pathlib.Path]:
    """A tmpfs of `size_bytes` (rounded up to whole pages) mounted at `path`.

    Raises:
      MountForbidden: mounting failed (not root, no CAP_SYS_ADMIN, no mount binary).
    """
    path.mkdir(parents=True, exist_ok=True)
    size = max(PAGE, -(-size_bytes // PAGE) * PAGE)
    try:
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=0755',
                                 'tmpfs', str(path)], capture_output=True, text=True,
                                timeout=30, check=False)
    except FileNotFoundError as e:
        raise MountForbidden(f'no mount command: {e}') from e
    if result.returncode != 0:
        raise MountForbidden(f'mount -t tmpfs at {path} failed (uid {os.getuid()}): '
                             f'{result.stderr.strip()}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', str(path)], check=True, timeout=30)


def fill(path: pathlib.Path, leave_bytes: int) -> None:
    """Fills the file system holding `path` with one file, leaving about `leave_bytes` free."""
    stats = os.statvfs(path)
    size = stats.f_bavail * stats.f_frsize - leave_bytes
    if size > 0:
        with open(path / 'filler', 'wb') as f:
            os.posix_fallocate(f.fileno(), 0, size)


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    """A subprocess preexec_fn: writes past `max_bytes` in one file fail with EFBIG."""
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return preexec
