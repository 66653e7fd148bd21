"""Bad input the pipeline must refuse clearly. (Killed runs and full disks:
test_fault_injection.py.)"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from components.image_example_gen import records
from tests import data
from tests.components.test_image_example_gen import read_examples, report_of, run_executor

pytestmark = pytest.mark.e2e


def runner(*args):
    return [sys.executable, str(data.PROJECT_ROOT / 'local_runner.py'), *args]


def test_unreadable_files_fail_the_run_with_one_line(tmp_path):
    root = tmp_path / 'data'
    for label in ('cats', 'dogs'):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f'{label}{i}.jpg').write_bytes(b'not an image at all')
    result = subprocess.run(runner('--data-root', str(root), '--work-dir', str(tmp_path / 'w'),
                                   '--no-report'),
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1
    assert errors[0].startswith('error: ImageExampleGen: no readable image in the data root '
                                '(6 bad files: cats/cats0.jpg: not a readable')
    # Where to look: the kept ExampleGen report and the run's log.
    assert 'failed_runs' in errors[0] and 'image_report.json' in errors[0]
    log_path = errors[0].rsplit('; see log ', 1)[1]
    assert os.path.isfile(log_path) and 'Traceback' in open(log_path, encoding='utf-8').read()
    lines = result.stdout.splitlines()
    assert re.match(r'^\[1/\d+\] ImageExampleGen \.\.\. FAILED after \d+\.\d s: no readable',
                    lines[4]), result.stdout
    assert lines[-2:] == [f'log: {log_path}', lines[-1]] and lines[-1].startswith('failed after')


@pytest.fixture(scope='module')
def extreme_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('extreme')
    # 8000 x 8000: a smooth gradient compresses to a small JPEG but decodes to 192 MB.
    ramp = np.linspace(0, 255, 8000, dtype=np.float32)
    big = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2,
                    np.full((8000, 8000), 128, np.float32)], axis=-1).astype(np.uint8)
    Image.fromarray(big).save(folder / 'huge.jpg', quality=70)
    Image.new('RGB', (1, 1), (200, 10, 10)).save(folder / 'tiny.png')
    return folder


def test_huge_and_tiny_images_become_examples(tmp_path, extreme_images):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 2, 'dogs': 2},
                                              'validation': {'cats': 1, 'dogs': 1}})
    for name in ('huge.jpg', 'tiny.png'):
        (root / 'train' / 'cats' / name).write_bytes((extreme_images / name).read_bytes())
    examples = run_executor(root, tmp_path / 'out', presplit=True)
    sizes = {}
    for example in read_examples(examples, 'train'):
        path = example.features.feature['path'].bytes_list.value[0].decode()
        sizes[os.path.basename(path)] = (example.features.feature['height'].int64_list.value[0],
                                         example.features.feature['width'].int64_list.value[0])
    assert sizes['huge.jpg'] == (8000, 8000) and sizes['tiny.png'] == (1, 1)
    assert report_of(examples)['bad_files'] == []


def test_huge_image_preprocessing_stays_within_bounded_memory(extreme_images):
    code = (
        'import json, resource, tensorflow as tf\n'
        'from models import preprocessing\n'
        'before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
        f'raw = tf.constant([open({str(extreme_images / "huge.jpg")!r}, "rb").read(),'
        f' open({str(extreme_images / "tiny.png")!r}, "rb").read()])\n'
        'out = preprocessing.preprocess_images(raw, (160, 160)).numpy()\n'
        'after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
        'print(json.dumps({"shape": out.shape, "min": float(out.min()),'
        ' "max": float(out.max()), "grown": (after - before) * 1024}))\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=data.PROJECT_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured['shape'] == [2, 160, 160, 3]
    assert -1.0 <= measured['min'] and measured['max'] <= 1.0
    grown = measured['grown']
    # One 8000x8000 image: 192 MB decoded, 768 MB as floats while resizing.
    assert grown < 1.5 * 2**30, f'preprocessing grew memory by {grown / 2**30:.2f} GiB'


def test_decompression_bombs_are_refused_before_decoding(extreme_images):
    with pytest.raises(records.BadImageError, match='too large: 8000x8000'):
        records.inspect_image((extreme_images / 'huge.jpg').read_bytes(), max_pixels=10_000_000)
