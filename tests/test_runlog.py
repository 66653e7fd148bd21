"""runlog.noise: third-party noise is filtered where it starts; our own warnings still show."""

import os
import subprocess
import sys

from runlog import noise
from tests import data

SCRIPT = """
import warnings
{setup}
import tensorflow
import google.api_core
warnings.warn('a warning of our own', UserWarning)
print('imported')
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = str(data.PROJECT_ROOT)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env, cwd=str(data.PROJECT_ROOT), timeout=300, check=True)


def test_quiet_tensorflow_leaves_only_our_warning():
    quiet = run_python(SCRIPT.format(setup='from runlog import noise\nnoise.quiet_tensorflow()'))
    assert quiet.stdout.strip() == 'imported'
    assert not noise.NATIVE_NOISE.search(quiet.stderr), quiet.stderr
    assert 'FutureWarning' not in quiet.stderr and 'DeprecationWarning' not in quiet.stderr
    assert 'UserWarning: a warning of our own' in quiet.stderr
    # Without the filters the same imports are noisy (so the assertions above can fail).
    noisy = run_python(SCRIPT.format(setup=''))
    assert 'FutureWarning' in noisy.stderr
