"""Inputs a hostile or careless client sends, generated (never checked in).

Decompression bombs are built directly in their formats so that generating
them is cheap: a 1-bit grey PNG of 20000x20000 is 50 KB of zlib over zero rows
and decodes (as RGB) to 1.2 GB; a GIF repeats one frame's blocks; a JPEG keeps
a real photo's data under a forged size.
"""

import io
import struct
import zlib

from PIL import Image


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height, all black."""
    row = b'\x00' + b'\x00' * ((width + 7) // 8)   # filter byte, packed bits
    compressor = zlib.compressobj(9)
    data = b''.join(compressor.compress(row) for _ in range(height))
    data += compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack('>I', len(body)) + kind + body +
                struct.pack('>I', zlib.crc32(kind + body)))

    header = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
            chunk(b'IDAT', data) + chunk(b'IEND', b''))


def gif_bomb(width: int, height: int, frames: int) -> bytes:
    """A valid GIF of `frames` identical one-colour frames of width x height."""
    buffer = io.BytesIO()
    Image.new('P', (width, height), 0).save(buffer, 'GIF')
    data = buffer.getvalue()
    # Header, screen descriptor and colour table; then the frame's blocks
    # (graphic control extension, if any, and image); then the trailer.
    flags = data[10]
    start = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)
    frame = data[start:-1]
    control = b'\x21\xf9\x04\x00\x00\x00\x00\x00'   # no delay, no disposal
    if not frame.startswith(b'\x21\xf9'):
        frame = control + frame
    netscape = b'\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00'   # loops: animated
    return data[:start] + netscape + frame * frames + b'\x3b'


def forged_jpeg(photo: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame header claims width x height."""
    position = 2
    while position + 4 <= len(photo):
        marker = photo[position + 1]
        length = struct.unpack('>H', photo[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            size = position + 5   # after the length and the precision byte
            return (photo[:size] + struct.pack('>HH', height, width) +
                    photo[size + 4:])
        position += 2 + length
    raise ValueError('no start-of-frame marker in the photo')


def small_png(width: int = 16, height: int = 16, colour=(200, 30, 30)) -> bytes:
    """A tiny ordinary RGB PNG."""
    buffer = io.BytesIO()
    Image.new('RGB', (width, height), colour).save(buffer, 'PNG')
    return buffer.getvalue()


class Zeros:
    """A request body of `size` spaces that is never held in memory whole.

    requests sends it with a Content-Length (it has a length) and reads it in
    pieces (it has read()).
    """

    def __init__(self, size: int):
        self._left = size
        self._size = size

    def __len__(self):
        return self._size

    def read(self, amount: int = -1) -> bytes:
        amount = self._left if amount is None or amount < 0 else min(
            amount, self._left)
        amount = min(amount, 1 << 20)
        self._left -= amount
        return b' ' * amount
