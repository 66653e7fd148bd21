"""The files of a DataQualityReport artifact: their names, and writing and reading them.

  label_issues.csv     path, given_class, suggested_class, score, split: the photos
                       flagged as possibly mislabelled, most suspicious first
  near_duplicates.csv  path_a, path_b, split_a, split_b, similarity, hash_distance: the
                       near-duplicate pairs, most similar first
  summary.json         counts, leaks per held-out split, the settings, and `problems`
                       (what stops the run: the DataReport adds them to its verdict) and
                       `warnings` (shown, never stopping)

Paths are the examples' `path`: the file as found under the data root.
"""

import csv
import io
import json
import os
from typing import Any, Dict, List, Sequence

LABEL_ISSUES_FILE = 'label_issues.csv'
NEAR_DUPLICATES_FILE = 'near_duplicates.csv'
SUMMARY_FILE = 'summary.json'
LABEL_ISSUE_COLUMNS = ('path', 'given_class', 'suggested_class', 'score', 'split')
NEAR_DUPLICATE_COLUMNS = ('path_a', 'path_b', 'split_a', 'split_b', 'similarity',
                          'hash_distance')


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(columns)
    writer.writerows(rows)
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(buffer.getvalue())


def _read_csv(path: str) -> List[Dict[str, str]]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path) as f:
        return list(csv.DictReader(io.StringIO(f.read())))


def write(uri: str, *, label_issues: Sequence[Sequence[Any]],
          near_duplicates: Sequence[Sequence[Any]], summary: Dict[str, Any]) -> None:
    """Writes the three files (rows in the columns' order) into the artifact's folder."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.io.gfile.makedirs(uri)
    _write_csv(os.path.join(uri, LABEL_ISSUES_FILE), LABEL_ISSUE_COLUMNS, label_issues)
    _write_csv(os.path.join(uri, NEAR_DUPLICATES_FILE), NEAR_DUPLICATE_COLUMNS, near_duplicates)
    with tf.io.gfile.GFile(os.path.join(uri, SUMMARY_FILE), 'w') as f:
        json.dump(summary, f, indent=1, sort_keys=True)


def read_summary(uri: str) -> Dict[str, Any]:
    """summary.json."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(os.path.join(uri, SUMMARY_FILE)) as f:
        return json.load(f)


def read_label_issues(uri: str) -> List[Dict[str, Any]]:
    """label_issues.csv's rows, most suspicious first (score as a float)."""
    rows = _read_csv(os.path.join(uri, LABEL_ISSUES_FILE))
    return [dict(row, score=float(row['score'])) for row in rows]


def read_near_duplicates(uri: str) -> List[Dict[str, Any]]:
    """near_duplicates.csv's rows, most similar first (numbers parsed)."""
    rows = _read_csv(os.path.join(uri, NEAR_DUPLICATES_FILE))
    return [dict(row, similarity=float(row['similarity']),
                 hash_distance=int(row['hash_distance'])) for row in rows]
