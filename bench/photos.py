"""Shared by the bench scripts: data roots built from ../shared photos, the default input size."""

import os
import pathlib
import shutil


def link(src: pathlib.Path, dest: pathlib.Path) -> None:
    """dest as a hard link to src (a copy where links are not possible); makes dest's folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def pipeline_image_size() -> int:
    """The square input size a default run picks (the shared weights' own: 224)."""
    from models import weights  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    (size, _), _ = weights.input_size(configs.SHARED_WEIGHTS, 'transfer', None)
    return size
