"""Accuracy by class with a binomial interval; a clearly worse class is named."""

import numpy as np
import pytest

from reports import class_accuracy


def test_interval_holds_the_accuracy_and_narrows_with_more_images():
    small = class_accuracy.per_class(np.array([[9, 1], [1, 9]]), ['a', 'b'])[0]
    large = class_accuracy.per_class(np.array([[900, 100], [100, 900]]), ['a', 'b'])[0]
    assert small.accuracy == large.accuracy == 0.9
    assert small.low < large.low < 0.9 < large.high < small.high
    # Wilson 95% for 9/10: 0.596 to 0.982.
    assert (round(small.low, 3), round(small.high, 3)) == (0.596, 0.982)


def test_the_default_runs_pattern_names_dogs():
    # 9 dogs called cats, none the other way, on 100 + 100 eval photos.
    rows = class_accuracy.per_class(np.array([[100, 0], [9, 91]]), ['cats', 'dogs'])
    assert [r.clearly_worse for r in rows] == [False, True]
    [sentence] = class_accuracy.worse_sentences(rows)
    assert sentence.startswith("class 'dogs' is clearly worse: 91.0% of its 100 eval images "
                               'right (95% interval ')
    assert 'against 100.0% for the other classes' in sentence


@pytest.mark.parametrize('confusion', [
    [[97, 3], [2, 98]],                       # balanced errors
    [[30, 1, 0], [1, 29, 1], [0, 2, 28]],     # three classes, small differences
])
def test_no_class_is_named_when_errors_are_even(confusion):
    rows = class_accuracy.per_class(np.array(confusion), [f'c{i}' for i in range(len(confusion))])
    assert class_accuracy.worse_sentences(rows) == []


def test_a_class_without_images_has_no_interval():
    rows = class_accuracy.per_class(np.array([[5, 0, 0], [0, 5, 0], [0, 0, 0]]), ['a', 'b', 'c'])
    assert rows[2].total == 0 and rows[2].worse_p is None and not rows[2].clearly_worse
