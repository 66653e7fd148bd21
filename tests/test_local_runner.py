"""local_runner's command line: bad data roots give one line, no traceback."""

import subprocess
import sys

import pytest

from tests import data


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, str(data.PROJECT_ROOT / 'local_runner.py'), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize('layout,message', [
    ('missing', 'does not exist'),
    ('empty', 'has no class folders'),
    ('one_class', 'has only one class folder (cats)'),
    ('unreadable', 'is missing or has no image files'),
])
def test_bad_data_root_gives_one_line_error(tmp_path, layout, message):
    root = tmp_path / 'root'
    if layout != 'missing':
        root.mkdir()
    if layout == 'one_class':
        data.make_root(root, {'train': {'cats': 2}}, presplit=False)
    if layout == 'unreadable':
        (root / 'cats').mkdir()
        (root / 'dogs').mkdir()
        (root / 'cats' / 'notes.txt').write_text('no images here')
        (root / 'dogs' / 'readme.md').write_text('no images here')
    result = run_cli('--data-root', str(root), '--work-dir', str(tmp_path / 'work'),
                     cwd=tmp_path)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0] and str(root) in errors[0]
    assert not (tmp_path / 'work').exists()


def test_beam_runs_in_process_for_small_data_sets_and_in_workers_for_large(tmp_path):
    import local_runner  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 3, 'dogs': 2}}, presplit=False)
    (root / 'dogs' / 'notes.txt').write_text('not an image')
    config = local_runner.build_config(local_runner.parse_args(
        ['--data-root', str(root), '--work-dir', str(tmp_path / 'work')]))
    assert config.beam_pipeline_args == configs.IN_MEMORY_BEAM_ARGS
    assert configs.local_beam_args(5) == configs.IN_MEMORY_BEAM_ARGS
    assert configs.local_beam_args(configs.IN_MEMORY_MAX_IMAGES + 1) == (
        configs.MULTI_PROCESS_BEAM_ARGS)
    assert configs.local_beam_args(None) == configs.MULTI_PROCESS_BEAM_ARGS
    # An explicit --beam-arg wins.
    config = local_runner.build_config(local_runner.parse_args(
        ['--data-root', str(root), '--work-dir', str(tmp_path / 'work'),
         '--beam-arg=--direct_running_mode=multi_threading']))
    assert config.beam_pipeline_args == ('--direct_running_mode=multi_threading',)
