"""Shared by the bench scripts that build data roots from ../shared photos."""

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
