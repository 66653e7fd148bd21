"""Pure: the rows of the scores CSV, and the accuracy on files whose folder names a class.

One row per entry under the folder, in listing order:
  path           '/'-separated, relative to the folder (non-UTF-8 bytes shown as \\xNN)
  status         scored, bad (an image file that could not be scored) or skipped
                 (not an image file: hidden, another extension, not a regular file)
  predicted      the class with the highest probability (scored rows)
  p(<class>)     one column per class, its probability (scored rows)
  folder_class   the first folder of the path named like a class, if any: then the
                 row counts towards the accuracy
  reason         why a file is bad or skipped
"""

import collections
import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

SCORED = 'scored'
BAD = 'bad'
SKIPPED = 'skipped'
STATUSES = (SCORED, BAD, SKIPPED)
PATH = 'path'
STATUS = 'status'
PREDICTED = 'predicted'
FOLDER_CLASS = 'folder_class'
REASON = 'reason'


def probability_column(class_name: str) -> str:
    """The CSV column holding a class's probability."""
    return f'p({class_name})'


def columns(class_names: Sequence[str]) -> List[str]:
    """The CSV header."""
    return [PATH, STATUS, PREDICTED, *map(probability_column, class_names), FOLDER_CLASS, REASON]


def folder_class(path: str, class_names: Sequence[str]) -> Optional[str]:
    """The first folder of a '/'-separated path that is named like a class (the label a
    labelled folder would give it), or None."""
    names = set(class_names)
    return next((part for part in path.split('/')[:-1] if part in names), None)


def row(path: str, class_names: Sequence[str], *, status: str,
        probabilities: Optional[np.ndarray] = None, reason: Optional[str] = None) -> Dict:
    """One CSV row (a dict keyed by `columns`)."""
    scored = probabilities is not None
    if (status == SCORED) != scored or (reason is None) != (status == SCORED):
        raise ValueError(f'a {status} row needs {"probabilities" if status == SCORED else "a reason"}'
                         f' and nothing else: {path}')
    values = {PATH: path, STATUS: status, FOLDER_CLASS: folder_class(path, class_names) or '',
              REASON: reason or '',
              PREDICTED: class_names[int(np.argmax(probabilities))] if scored else ''}
    for index, name in enumerate(class_names):
        values[probability_column(name)] = f'{probabilities[index]:.6f}' if scored else ''
    return values


@dataclasses.dataclass
class Tally:
    """Counts by status, bad and skipped reasons, and per folder class (scored, right)."""
    class_names: Sequence[str]
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    scored_by_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    right_by_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, values: Dict) -> None:
        """Counts one row."""
        self.statuses[values[STATUS]] += 1
        if values[REASON]:
            self.reasons[values[REASON]] += 1
        if values[STATUS] == SCORED and values[FOLDER_CLASS]:
            self.scored_by_class[values[FOLDER_CLASS]] += 1
            self.right_by_class[values[FOLDER_CLASS]] += values[PREDICTED] == values[FOLDER_CLASS]

    @property
    def files(self) -> int:
        return sum(self.statuses.values())

    def accuracy(self) -> Optional[Dict]:
        """{'accuracy', 'images', 'by_class': {class: {'accuracy', 'images'}}} over scored
        files whose folder names a class; None when no folder does."""
        images = sum(self.scored_by_class.values())
        if not images:
            return None
        return {'accuracy': sum(self.right_by_class.values()) / images, 'images': images,
                'by_class': {name: {'accuracy': self.right_by_class[name] / count,
                                    'images': count}
                             for name in self.class_names
                             if (count := self.scored_by_class[name])}}

    def summary(self) -> Dict:
        """Counts by status, the most common reasons and the accuracy (JSON-able)."""
        return {'files': self.files, **{status: self.statuses[status] for status in STATUSES},
                'reasons': dict(self.reasons.most_common(20)), 'accuracy': self.accuracy()}


def accuracy_line(accuracy: Optional[Dict]) -> Optional[str]:
    """'accuracy 0.978 on 1000 files whose folder names a class (cats 0.974 of 500, ...)'."""
    if not accuracy:
        return None
    parts = ', '.join(f'{name} {found["accuracy"]:.3f} of {found["images"]}'
                      for name, found in accuracy['by_class'].items())
    return (f'accuracy {accuracy["accuracy"]:.3f} on {accuracy["images"]} scored files whose '
            f'folder names a class ({parts})')
