"""pipeline.console.reason_line: a failure in one line that says what went wrong."""

import pytest

from pipeline import console

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
