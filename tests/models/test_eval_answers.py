"""models/eval_answers.py: the JSON summary and every eval photo's answers beside it."""

import json
import os

import numpy as np

from models import eval_answers

NAMES = ['cats', 'dogs']


def test_every_answer_is_written_beside_the_summary_and_read_by_path(tmp_path):
    probabilities = np.asarray([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    paths = np.asarray([b'validation/cats/a.jpg', b'validation/dogs/b\xc3\xa9.jpg',
                        b'validation/dogs/c.jpg'], dtype=object)
    answers = eval_answers.summarize(probabilities, np.asarray([0, 1, 1]), paths, NAMES)
    eval_answers.save(answers, str(tmp_path))
    with open(tmp_path / eval_answers.ANSWERS_FILE, encoding='utf-8') as f:
        summary = json.load(f)
    assert eval_answers.EVERY_ANSWER not in summary
    assert summary == eval_answers.load(str(tmp_path))
    assert [m['path'] for m in summary['misclassified']] == ['validation/dogs/c.jpg']
    every = eval_answers.load_every_answer(str(tmp_path))
    assert isinstance(every, np.memmap)
    assert every[eval_answers.PATH_FIELD].tolist() == list(paths)
    np.testing.assert_array_equal(every[eval_answers.PROBABILITIES_FIELD], probabilities)


def test_no_paths_no_file(tmp_path):
    answers = eval_answers.summarize(np.asarray([[0.3, 0.7]]), np.asarray([1]), None, NAMES)
    eval_answers.save(answers, str(tmp_path))
    assert not os.path.exists(tmp_path / eval_answers.PROBABILITIES_FILE)
    assert eval_answers.load_every_answer(str(tmp_path)) is None
    assert eval_answers.load(str(tmp_path))['images'] == 1
