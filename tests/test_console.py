"""pipeline.console: a failure in one line that says what went wrong (reason_line), and
which warnings reach the log and the console."""

import subprocess
import sys

import pytest

from pipeline import console
from tests import data

TF_ERROR = """in user code:

    File "/work/main/models/export.py", line 63, in classify_examples  *
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(probs)[0], 1])

    NameError: name 'names' is not defined
"""


@pytest.mark.parametrize('message, line', [
    (TF_ERROR, "NameError: name 'names' is not defined"),
    # DataGate's message: a heading, the problems, where the report is.
    ('data validation failed, training stopped:\n  - eval has 12 images\n  - train has no dogs\n'
     '  - 3 bad files\nreport: /r/index.html',
     'data validation failed, training stopped: eval has 12 images (and 2 more)'),
    ('data validation failed, training stopped:\n  - eval has 12 images\nreport: /r/index.html',
     'data validation failed, training stopped: eval has 12 images'),
    ('no such file: /data/x.jpg', 'no such file: /data/x.jpg'),
    ('  \n', 'unknown error'),
])
def test_reason_line(message, line):
    assert console.reason_line(message) == line


SCRIPT = '''
import sys, warnings
from pipeline import console
before = warnings.filters[:]
with console.Console(sys.argv[1], verbose=sys.argv[2] == 'verbose'):
    warnings.warn_explicit('client library noise', FutureWarning, 'auth.py', 1,
                           module='google.auth')
    warnings.warn('our own warning')
print('filters restored' if warnings.filters == before else 'filters changed')
'''


@pytest.mark.parametrize('mode', ['quiet', 'verbose'])
def test_known_noise_is_filtered_unless_verbose_and_only_while_open(tmp_path, mode):
    log = tmp_path / 'run.log'
    result = subprocess.run([sys.executable, '-c', SCRIPT, str(log), mode], cwd=data.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'filters restored' in result.stdout
    text = log.read_text()
    assert 'our own warning' in text
    assert ('client library noise' in text) == (mode == 'verbose')
    # Verbose: everything on the console too.
    assert ('our own warning' in result.stdout + result.stderr) == (mode == 'verbose')
