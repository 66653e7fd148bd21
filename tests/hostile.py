"""A hostile data root: real photos from ../shared plus every kind of entry a user's
folder can hold that must not hang, crash or flood ingestion (issue 39), each with
what ingestion must make of it; and a way to run code as an unprivileged user, so
that "permission denied" is real even when the tests run as root.

    python -m tests.hostile ingest ROOT OUT    # ImageExampleGen's executor on ROOT
"""

import contextlib
import dataclasses
import io
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from PIL import Image

from models import tflite_base
from tests import data
from tests.serving import hostile_inputs

CLASS_NAMES = ('cats', 'dogs')
NOBODY = 65534
OK, BAD, IGNORED = 'ok', 'bad', 'ignored'
# A photo's path longer than PATH_MAX (4096 bytes), as the 4,334-byte path.
DEEP_FOLDERS = 21
DEEP = 'dogs/' + ('d' * 200 + '/') * DEEP_FOLDERS + 'deep photo.jpg'
SPARSE_BYTES = 2_100_000_000


@dataclasses.dataclass
class HostileRoot:
    """The root and what must become of each entry.

    Attributes:
      root: the data root (world-readable, so an unprivileged user can read it).
      outside: a folder beside the root that links point into.
      expected: display path -> (status, start of the reason); None for photos.
      links: link path -> target, for the links ingestion follows out of the root.
      conflicting: the display paths of the photo filed under both classes.
    """
    root: pathlib.Path
    outside: pathlib.Path
    expected: Dict[str, Tuple[str, str]]
    links: Dict[str, str]
    conflicting: Tuple[str, str]


def _odd_photos(photo: pathlib.Path) -> Dict[str, bytes]:
    """Unusual but valid images: each must be ingested."""
    image = Image.open(photo).convert('RGB')
    small = image.resize((96, 72))
    frames = [small, small.rotate(90, expand=False)]
    animated = io.BytesIO()
    frames[0].save(animated, 'GIF', save_all=True, append_images=frames[1:], duration=100)
    deep16 = Image.fromarray((np.asarray(image.convert('L'), dtype=np.uint16) * 257))
    palette = small.convert('P', palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info['transparency'] = 0
    icc = data.encode(image, 'JPEG', icc_profile=b'\0' * 128)
    return {
        'animated.gif': animated.getvalue(),
        '16-bit.png': data.encode(deep16, 'PNG'),
        'palette transparent.png': data.encode(palette, 'PNG', transparency=0),
        'progressive.jpg': data.encode(image, 'JPEG', progressive=True),
        'icc profile.jpg': icc,
    }


def _write(path: pathlib.Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def _write_deep(root: pathlib.Path, relative: str, payload: bytes) -> None:
    """Writes root/relative one folder at a time (the whole path is beyond PATH_MAX)."""
    *folders, name = relative.split('/')
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o755, dir_fd=fd)
            below = os.open(folder, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        out = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, payload)
        os.close(out)
    finally:
        os.close(fd)


def make_hostile_root(base: pathlib.Path, per_class: int) -> HostileRoot:
    """Writes `per_class` real photos per class and the hostile entries under base/root.

    Returns:
      The HostileRoot, with the expected fate of every entry.
    """
    root, outside = base / 'root', base / 'outside'
    expected: Dict[str, Tuple[str, str]] = {}

    def add(path: str, payload: bytes, status: str = OK, reason: str = '') -> None:
        _write(root / path, payload)
        expected[path] = (status, reason)

    cats = data.photos('train', 'cats', per_class + 5)
    dogs = data.photos('train', 'dogs', per_class + 4)
    for photo in cats[:per_class]:
        add(f'cats/{photo.name}', photo.read_bytes())
    for photo in dogs[:per_class]:
        add(f'dogs/{photo.name}', photo.read_bytes())
    jpeg = cats[per_class].read_bytes()
    png = data.encode(Image.open(cats[per_class + 1]), 'PNG')

    # Odd but valid: ingested.
    for name, payload in _odd_photos(dogs[per_class]).items():
        add(f'dogs/{name}', payload)
    add('cats/new\nline.jpg', cats[per_class + 2].read_bytes())
    add('cats/-rf leading dash.jpg', cats[per_class + 3].read_bytes())
    add('dogs/glob [a]*?.jpg', dogs[per_class + 1].read_bytes())
    add('dogs/' + 'n' * 246 + '.jpg', dogs[per_class + 2].read_bytes())
    # Names that are not UTF-8 (a file, and a folder in a class): ingested, shown escaped.
    _write(root / os.fsdecode(b'dogs/bad\xff\xfe\x80name.jpg'), dogs[per_class + 3].read_bytes())
    expected['dogs/bad\\xff\\xfe\\x80name.jpg'] = (OK, '')
    _write(root / os.fsdecode(b'cats/caf\xe9/photo.jpg'), jpeg)
    expected['cats/caf\\xe9/photo.jpg'] = (OK, '')
    # A photo at a path longer than PATH_MAX: ingested.
    _write_deep(root, DEEP, png)
    expected[DEEP] = (OK, '')
    # The same photo filed under both classes: ingested twice, a warning.
    add('cats/both.jpg', cats[per_class + 4].read_bytes())
    add('dogs/both.jpg', cats[per_class + 4].read_bytes())

    # Bad, with what was found.
    os.mkfifo(root / 'cats' / 'stuck.jpg')
    expected['cats/stuck.jpg'] = (BAD, 'named pipe (FIFO), not a regular file')
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / 'cats' / 'socket.jpg'))
    sock.close()
    expected['cats/socket.jpg'] = (BAD, 'socket, not a regular file')
    (root / 'cats' / 'zero.jpg').symlink_to('/dev/zero')
    expected['cats/zero.jpg'] = (BAD, 'character device, not a regular file (a link to /dev/zero)')
    (root / 'dogs' / 'gone.jpg').symlink_to(base / 'nowhere.jpg')
    expected['dogs/gone.jpg'] = (BAD, 'no such file')
    (root / 'dogs' / 'self.jpg').symlink_to('self.jpg')
    expected['dogs/self.jpg'] = (BAD, 'symbolic link loop')
    with open(root / 'dogs' / 'sparse 2.1 GB.jpg', 'wb') as f:
        f.write(jpeg)
        f.truncate(SPARSE_BYTES)
    expected['dogs/sparse 2.1 GB.jpg'] = (BAD, f'file too large: {SPARSE_BYTES:,} bytes')
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xff                   # the IHDR chunk's checksum
    add('cats/bad checksum.png', bytes(bad_crc), BAD,
        "PNG signature, but its decoder found: broken PNG file (bad header checksum in b'IHDR')")
    add('cats/header only.png', png[:33], BAD,
        'PNG header with no image data after it: the file ends after 33 bytes')
    add('dogs/bomb.png', hostile_inputs.png_claiming(40_000, 40_000), BAD,
        'image too large to decode safely')
    add('dogs/claims 65000.jpg', hostile_inputs.forged_jpeg(jpeg, 65_000, 65_000), BAD,
        'image too large')
    add('dogs/webp inside.jpg', data.encode(Image.open(cats[1]), 'WEBP'), BAD,
        'unsupported image format WEBP')
    add('cats/empty.jpg', b'', BAD, 'empty file (0 bytes)')
    add('cats/truncated.jpg', jpeg[:len(jpeg) // 3], BAD, 'cannot decode JPEG')
    add('cats/locked.jpg', jpeg, BAD, 'permission denied')
    (root / 'cats' / 'locked.jpg').chmod(0)
    _write(root / 'dogs' / 'locked folder' / 'photo.jpg', jpeg)
    expected['dogs/locked folder'] = (BAD, 'cannot list folder: permission denied')
    (root / 'dogs' / 'locked folder').chmod(0)

    # Ignored, with the reason.
    (root / 'cats' / 'loop').symlink_to('..')
    expected['cats/loop'] = (IGNORED, 'link to a folder that holds it (a loop, to ..)')
    for path, reason in {
            'cats/.hidden.jpg': 'hidden file', 'cats/._cat.jpg': 'hidden file',
            'cats/.DS_Store': 'hidden file', 'dogs/Thumbs.db': 'not an image file name',
            'dogs/desktop.ini': 'not an image file name',
            '__MACOSX/cats/._x.jpg': 'inside hidden or system folder __MACOSX/',
            'cats/photo.webp': '.webp photos are not read',
            'cats/scan.tiff': '.tiff photos are not read',
            'dogs/IMG_0001.HEIC': '.heic photos are not read',
            'notes.txt': 'not inside a class folder',
            'stray.jpg': 'not inside a class folder'}.items():
        add(path, jpeg if path.endswith(('.jpg', '.webp', '.tiff')) else b'x', IGNORED, reason)
    _write(root / os.fsdecode(b'cats/.th\xffumbs/x.jpg'), jpeg)
    expected['cats/.th\\xffumbs/x.jpg'] = (IGNORED, 'inside hidden or system folder '
                                                   '.th\\xffumbs/')
    _write(root / os.fsdecode(b'\xffclass/x.jpg'), jpeg)
    expected['\\xffclass/x.jpg'] = (IGNORED, 'folder \\xffclass/ is not one of the classes '
                                             '(its name is not UTF-8 text')

    # Links out of the root (followed by default, and named in the report).
    elsewhere = data.photos('validation', 'dogs', 4)
    _write(outside / 'linked photo.jpg', elsewhere[0].read_bytes())
    (root / 'dogs' / 'linked.jpg').symlink_to(outside / 'linked photo.jpg')
    expected['dogs/linked.jpg'] = (OK, '')
    for photo in elsewhere[1:]:
        _write(outside / 'album' / photo.name, photo.read_bytes())
        expected[f'dogs/album/{photo.name}'] = (OK, '')
    (root / 'dogs' / 'album').symlink_to(outside / 'album')
    links = {'dogs/linked.jpg': str(outside / 'linked photo.jpg'),
             'dogs/album': str(outside / 'album')}
    # As many photos used in each class, so that the data gate's balance check passes.
    used = {name: sum(1 for path, (status, _) in expected.items()
                      if status == OK and path.startswith(f'{name}/')) for name in CLASS_NAMES}
    for name in CLASS_NAMES:
        for photo in data.photos('train', name, max(used.values()) - used[name],
                                 offset=per_class + 10):
            add(f'{name}/{photo.name}', photo.read_bytes())
    return HostileRoot(root, outside, expected, links, ('cats/both.jpg', 'dogs/both.jpg'))


@contextlib.contextmanager
def world_readable_dir() -> Iterator[pathlib.Path]:
    """A temporary folder any user can enter (pytest's tmp_path is its owner's only)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix='hostile-'))
    base.chmod(0o755)
    try:
        yield base
    finally:
        # Folders without permission opened again, relative to their parent (paths
        # beyond PATH_MAX), before the walk goes into them.
        for _, folders, _, folder_fd in os.fwalk(base):
            for name in folders:
                if not stat.S_ISLNK(os.stat(name, dir_fd=folder_fd,
                                            follow_symlinks=False).st_mode):
                    os.chmod(name, 0o755, dir_fd=folder_fd)
        shutil.rmtree(base)


def as_unprivileged() -> List[str]:
    """The command prefix that runs a program as an unprivileged user: setpriv when
    this process is root (then a file without read permission is still readable),
    nothing otherwise. Fails in CI and skips elsewhere without setpriv."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which('setpriv')
    if setpriv is None:
        message = 'setpriv (util-linux) is needed to test permission denied as a non-root user'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return [setpriv, f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups']


def unprivileged_python(base: pathlib.Path) -> str:
    """An interpreter with this environment's packages that the unprivileged user of
    `as_unprivileged` can start, also from its own children (the InfraValidator starts
    the server with sys.executable).

    setpriv starts this process's interpreter while it still holds root's capabilities,
    but a child of the unprivileged process cannot reach an interpreter under a folder
    only root may enter (pyenv's under /root here and in CI). So, as root: a venv under
    `base` on the system's interpreter of the same version, whose one .pth file adds
    this environment's site-packages (and so its .pth files: the editable install).
    Not root: sys.executable.
    """
    if os.geteuid() != 0:
        return sys.executable
    version = f'{sys.version_info.major}.{sys.version_info.minor}'
    system = shutil.which(f'python{version}', path='/usr/local/bin:/usr/bin:/bin')
    if system is None:
        message = f'python{version} outside /root is needed to run the pipeline as user {NOBODY}'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    venv = base / 'python'
    subprocess.run([system, '-m', 'venv', '--without-pip', str(venv)], check=True)
    purelib = pathlib.Path(venv / 'lib' / f'python{version}' / 'site-packages')
    (purelib / 'tests_environment.pth').write_text(
        f'import site; site.addsitedir({sysconfig.get_paths()["purelib"]!r})\n')
    for path in [venv, *venv.rglob('*')]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH |
                       (stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))
    return str(venv / 'bin' / 'python')


def writable_by_unprivileged(path: pathlib.Path) -> pathlib.Path:
    """Makes a folder the unprivileged user of `as_unprivileged` can write."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path


def run_measured(command: List[str], env: Dict[str, str], timeout: float
                 ) -> Tuple[int, str, int]:
    """Runs a command; (exit code, its output, its peak resident memory in bytes).

    The peak is the process's own (wait4), with the children it waited for, not
    that of every child this test process ever had.
    """
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = _wait4(proc.pid, timeout)
        except TimeoutError:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return proc.returncode, out.read().decode('utf-8', 'replace'), usage.ru_maxrss * 1024


def _wait4(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found, status, usage = os.wait4(pid, os.WNOHANG)
        if found:
            return found, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f'{pid} still running after {timeout} s')
        time.sleep(0.2)


def unprivileged_env(home: pathlib.Path) -> Dict[str, str]:
    """The environment for a child run as the unprivileged user: our code first on the
    path, a home it can write."""
    # Not the test session's own cache folders (tests/conftest.py): that user cannot reach
    # them; its home has its own.
    inherited = {k: v for k, v in os.environ.items() if k != tflite_base.CACHE_ENV}
    return {**inherited, 'HOME': str(home), 'PYTHONPATH': str(data.PROJECT_ROOT),
            'TMPDIR': str(home)}


def run_unprivileged(base: pathlib.Path, command: List[str], timeout: float
                     ) -> Tuple[int, str, int]:
    """`run_measured` of command as the unprivileged user of `as_unprivileged`, with a
    home of its own under base (a `world_readable_dir`)."""
    home = writable_by_unprivileged(base / 'home')
    return run_measured(as_unprivileged() + command, env=unprivileged_env(home),
                        timeout=timeout)


def ingest(root: str, out: str) -> None:
    """ImageExampleGen's executor on a hash-split root, as the launcher runs it."""
    from google.protobuf import message  # pylint: disable=import-outside-toplevel
    from tfx.types import standard_artifacts  # pylint: disable=import-outside-toplevel
    from tfx.utils import proto_utils  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import component  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import executor  # pylint: disable=import-outside-toplevel
    gen = component.ImageExampleGen(root, CLASS_NAMES, presplit=False, max_bad_fraction=1.0)
    exec_properties = {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
                       for k, v in gen.exec_properties.items() if v is not None}
    examples = standard_artifacts.Examples()
    examples.uri = out
    executor.Executor().Do({}, {'examples': [examples]}, exec_properties)


if __name__ == '__main__':
    if sys.argv[1:2] == ['ingest']:
        ingest(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
