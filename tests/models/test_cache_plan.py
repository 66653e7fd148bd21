"""The Trainer's local cache folder: this run's, and those of Trainers that were stopped."""

import os
import subprocess
import sys
import tempfile

from models import cache_plan


def _ended_pid():
    ended = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                           capture_output=True, text=True, check=True)
    return ended.stdout.strip()


def test_a_stopped_trainers_cache_is_removed_and_a_running_ones_kept(tmp_path):
    stale = tmp_path / f'{cache_plan.CACHE_DIR_PREFIX}{_ended_pid()}-abc'
    running = tmp_path / f'{cache_plan.CACHE_DIR_PREFIX}{os.getpid()}-def'
    others = [tmp_path / f'{cache_plan.CACHE_DIR_PREFIX}xyz', tmp_path / 'something-else-1']
    for folder in (stale, running, *others):
        (folder / 'train').mkdir(parents=True)
    (stale / 'train' / 'cache.data').write_bytes(b'x' * 100)
    assert cache_plan.remove_stale_caches(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and running.exists() and all(p.exists() for p in others)


def test_cache_folder_is_this_runs_and_gone_after_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    stale = tmp_path / f'{cache_plan.CACHE_DIR_PREFIX}{_ended_pid()}-abc'
    stale.mkdir()
    with cache_plan.cache_folder() as root:
        assert os.path.dirname(root) == str(tmp_path) and os.path.isdir(root)
        assert os.path.basename(root).startswith(f'{cache_plan.CACHE_DIR_PREFIX}{os.getpid()}-')
        assert not stale.exists()
    assert not os.path.exists(root)
