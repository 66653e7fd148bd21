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


def synthetic_image(index: int, size=(120, 90)) -> bytes:
    """A PNG unlike any photo: a flat colour with a bright square, varied by index."""
    image = Image.new('RGB', size, ((index * 53) % 256, 200 - (index * 31) % 120, 40))
    square = Image.new('RGB', (size[0] // 3, size[1] // 3), (255, 255, (index * 17) % 256))
    image.paste(square, ((index * 7) % (size[0] // 2), (index * 5) % (size[1] // 2)))
    return encode(image, 'PNG')


# A user's own root: three classes whose names are not the tutorial's (capitals,
# a space, an accent), images at several depths, upper- and mixed-case
# extensions, bad files and files that are no images.
ANY_CLASS_NAMES = ('Chats domestiques', 'Hunde', 'Été')


def make_any_root(dest: pathlib.Path, per_class: int) -> Dict[str, Dict[str, str]]:
    """Writes a messy 3-class root (real cats and dogs under other names, a synthetic
    third class).

    Returns:
      {'images': {path: class}, 'bad': {path: reason start}, 'ignored': {path: reason start}}
      for every file written, paths relative to dest.
    """
    images: Dict[str, str] = {}
    for i, photo in enumerate(photos('train', 'cats', per_class)):
        folder = 'Chats domestiques/2019/phone export' if i % 3 == 0 else 'Chats domestiques'
        images[f'{folder}/{photo.stem}.JPG'] = photo.read_bytes()
    for i, photo in enumerate(photos('train', 'dogs', per_class)):
        folder = 'Hunde/a/b' if i % 4 == 0 else 'Hunde'
        images[f'{folder}/{photo.name}'] = photo.read_bytes()
    for i in range(per_class):
        images[f'Été/{"deep/" if i % 2 else ""}img {i}.Png'] = synthetic_image(i)
    bad = {'Hunde/broken.jpg': ('not an image', 'not a readable image'),
           'Été/empty.GIF': (b'', 'empty file')}
    ignored = {'README.md': 'not inside a class folder',
               'Hunde/.DS_Store': 'hidden file',
               'Hunde/notes.txt': 'not an image file name',
               'Hunde/a/IMG_0042.HEIC': '.heic photos are not read',
               'Été/scan 3.webp': '.webp photos are not read',
               '__MACOSX/Hunde/._x.jpg': 'inside hidden or system folder __MACOSX/'}
    for path, payload in images.items():
        _write(dest / path, payload)
    for path, (payload, _) in bad.items():
        _write(dest / path, payload if isinstance(payload, bytes) else payload.encode())
    for path in ignored:
        _write(dest / path, b'x')
    return {'images': {path: path.split('/')[0] for path in images},
            'bad': {path: reason for path, (_, reason) in bad.items()},
            'ignored': ignored}


def _write(path: pathlib.Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
