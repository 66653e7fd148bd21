"""Builds small image folders for tests from the real photos in ../shared.

Photos are copied into a temporary folder the test owns; nothing is copied
into the repository.
"""

import io
import pathlib
import shutil
from typing import Dict, Mapping

from PIL import Image

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / 'shared'
CATS_VS_DOGS = SHARED / 'datasets' / 'cats_vs_dogs'
WEIGHTS = (SHARED / 'keras' / 'models' /
           'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5')


def photos(split: str, label: str, count: int, offset: int = 0):
    """The first `count` photos (after `offset`) of a class in cats_vs_dogs, sorted by name."""
    files = sorted((CATS_VS_DOGS / split / label).glob('*.jpg'),
                   key=lambda p: int(p.stem.split('.')[1]))
    chosen = files[offset:offset + count]
    if len(chosen) != count:
        raise ValueError(f'only {len(chosen)} photos in {split}/{label} after {offset}')
    return chosen


def make_root(dest: pathlib.Path, counts: Mapping[str, Mapping[str, int]],
              presplit: bool = True) -> pathlib.Path:
    """Copies real photos into dest.

    Args:
      dest: folder to create.
      counts: {'train': {'cats': 20, 'dogs': 20}, 'validation': {...}}; with
        presplit=False the split level is dropped (files of both go to <label>/).
      presplit: keep train/ and validation/ folders.

    Returns:
      dest.
    """
    for split, per_label in counts.items():
        for label, count in per_label.items():
            folder = dest / split / label if presplit else dest / label
            folder.mkdir(parents=True, exist_ok=True)
            for src in photos(split, label, count):
                shutil.copy(src, folder / src.name)
    return dest


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def bad_files(source: pathlib.Path) -> Dict[str, bytes]:
    """File name -> bytes of files ImageExampleGen must report as bad."""
    jpeg = source.read_bytes()
    return {
        'truncated.jpg': jpeg[:len(jpeg) // 3],
        'empty.jpg': b'',
        'text.jpg': b'this is a text file with a .jpg name\n',
    }


def odd_good_files(source: pathlib.Path) -> Dict[str, bytes]:
    """File name -> bytes of unusual but valid images (must be read as RGB)."""
    image = Image.open(source)
    return {
        'photo.png': encode(image, 'PNG'),
        'grey.jpg': encode(image.convert('L'), 'JPEG'),
        'cmyk.jpg': encode(image.convert('CMYK'), 'JPEG'),
        'alpha.png': encode(image.convert('RGBA'), 'PNG'),
        'palette.gif': encode(image.convert('P'), 'GIF'),
        'photo.bmp': encode(image, 'BMP'),
    }
