"""The DataQuality stage's part of the data report: its problems and warnings in the
verdict, and two sections with the top suspects as thumbnails side by side.

Kept apart from the report's own checks and rendering: the DataReport reads the
DataQualityReport artifact (components/data_quality/outputs.py) only here.
"""

from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple

import numpy as np

from components import examples_io
from components.data_quality import outputs
from models import features
from models import orientation
from pages import html
from pages import plots

# Suspects pictured: the most suspicious label issues, the most similar pairs (leaks
# first); the CSVs hold them all.
LABEL_ISSUES_SHOWN = 12
PAIRS_SHOWN = 8
_PER_ROW = 4
_THUMBNAIL = 160


def read(uri: str) -> Dict[str, Any]:
    """summary.json and the rows of both CSVs of a DataQualityReport."""
    return {'summary': outputs.read_summary(uri), 'uri': uri,
            'label_issues': outputs.read_label_issues(uri),
            'near_duplicates': outputs.read_near_duplicates(uri)}


def add_to_verdict(verdict: Dict[str, Any], quality: Mapping[str, Any]) -> None:
    """Its problems (what stops the run) and warnings into the verdict, its settings
    beside the report's own."""
    summary = quality['summary']
    verdict['problems'] = verdict['problems'] + summary['problems']
    verdict['passed'] = not verdict['problems']
    verdict['warnings'] = verdict.get('warnings', []) + summary['warnings']
    verdict['settings'] = {**verdict['settings'], **summary['settings']}


def leaks_first(pairs: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """Pairs across train and a held-out split first, then the rest; each by similarity."""
    def crossing(pair):
        return features.TRAIN_SPLIT in (pair['split_a'], pair['split_b']) and (
            pair['split_a'] != pair['split_b'])
    return sorted(pairs, key=lambda pair: not crossing(pair))


def pictured(quality: Mapping[str, Any]) -> Dict[str, Set[str]]:
    """{split: paths} of the photos the sections show."""
    wanted: Dict[str, Set[str]] = {}
    for row in quality['label_issues'][:LABEL_ISSUES_SHOWN]:
        wanted.setdefault(row['split'], set()).add(row['path'])
    for pair in leaks_first(quality['near_duplicates'])[:PAIRS_SHOWN]:
        for side in ('a', 'b'):
            wanted.setdefault(pair[f'split_{side}'], set()).add(pair[f'path_{side}'])
    return wanted


def read_images(examples_uri: str, wanted: Mapping[str, Set[str]]) -> Dict[Tuple[str, str], bytes]:
    """{(split, path): image bytes} of the wanted photos (each split read until all are found)."""
    return {(split, path): data for split, paths in wanted.items()
            for path, data in examples_io.images_by_path(examples_uri, split, paths).items()}


def thumbnail(data: bytes) -> np.ndarray:
    """The photo upright (as the model sees it), shrunk to at most _THUMBNAIL a side."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    image = tf.image.resize(orientation.decode_upright(tf.constant(data)),
                            (_THUMBNAIL, _THUMBNAIL), preserve_aspect_ratio=True, antialias=True)
    return np.clip(image.numpy(), 0, 255).astype(np.uint8)


def _name(path: str) -> str:
    return path.split('/')[-1]


def sections(quality: Mapping[str, Any],
             images: Mapping[Tuple[str, str], bytes]) -> List[html.Section]:
    """'Possible label errors' and 'Near-duplicates and leaks'."""
    summary = quality['summary']
    issues, pairs = quality['label_issues'], leaks_first(quality['near_duplicates'])
    found = summary['label_issues']
    thresholds = ', '.join(f'{name} {value:.2f}' for name, value in found['thresholds'].items())
    label_parts = [html.paragraph(
        f"{found['flagged']} of {summary['photos']} photos ({found['share']:.1%}) look like "
        'another class to logistic regressions on the frozen features trained without them '
        f"({found['folds']}-fold, out-of-fold accuracy {found['out_of_fold_accuracy']:.1%}): "
        'confident learning: the photos reaching a class\'s typical confidence (per class: '
        f'{thresholds}) estimate how many of each class are another, and that many are '
        'flagged, those that look most like the other class. Score: 1 - the probability '
        'of the given class. Look at them: a flagged photo may be ambiguous '
        f"rather than wrong. Every one: {outputs.LABEL_ISSUES_FILE} in {quality['uri']}.")]
    tiles = [(thumbnail(images[(row['split'], row['path'])]),
              f"{_name(row['path'])}\n{row['given_class']} -> {row['suggested_class']} "
              f"({row['score']:.2f})")
             for row in issues[:LABEL_ISSUES_SHOWN] if (row['split'], row['path']) in images]
    if tiles:
        rows = [('', tiles[i:i + _PER_ROW]) for i in range(0, len(tiles), _PER_ROW)]
        label_parts.append(html.image(plots.image_grid(rows), 'possible label errors'))
        label_parts.append(html.table(
            [[row['path'], row['split'], row['given_class'], row['suggested_class'],
              f"{row['score']:.3f}"] for row in issues[:LABEL_ISSUES_SHOWN]],
            ['path', 'split', 'given class', 'suggested class', 'score']))
    else:
        label_parts.append(html.paragraph('No photo is flagged.', 'ok'))

    duplicates = summary['near_duplicates']
    leak_lines = [f"{split}: {leak['photos']} of {leak['of']} photos ({leak['share']:.1%}) "
                  'have a near-copy in train' for split, leak in summary['leaks'].items()]
    pair_parts = [html.paragraph(
        f"{duplicates['pairs']} pairs ({duplicates['across_splits']} across splits, "
        f"{duplicates['within_split']} within one): whitened cosine of the frozen features "
        f"at least {summary['settings']['near_duplicate_similarity']:g}, or perceptual hashes "
        'within a few bits (the same photo resized, re-encoded, brightened or mirrored). '
        f"Search: {duplicates['search']}. Every pair: {outputs.NEAR_DUPLICATES_FILE}."),
        html.bullet_list(leak_lines)]
    grid = [('', [(thumbnail(images[(pair[f'split_{s}'], pair[f'path_{s}'])]),
                   f"{pair[f'split_{s}']}: {_name(pair[f'path_{s}'])}"
                   + (f"\nsimilarity {pair['similarity']:.2f}" if s == 'b' else ''))
                  for s in ('a', 'b')])
            for pair in pairs[:PAIRS_SHOWN]
            if all((pair[f'split_{s}'], pair[f'path_{s}']) in images for s in ('a', 'b'))]
    if grid:
        pair_parts.append(html.image(plots.image_grid(grid), 'near-duplicate pairs'))
        pair_parts.append(html.table(
            [[p['path_a'], p['split_a'], p['path_b'], p['split_b'], f"{p['similarity']:.3f}",
              p['hash_distance']] for p in pairs[:PAIRS_SHOWN]],
            ['photo', 'split', 'near-copy', 'split', 'similarity', 'hash bits apart']))
    else:
        pair_parts.append(html.paragraph('No near-duplicates.', 'ok'))
    return [html.Section('Possible label errors', label_parts),
            html.Section('Near-duplicates and leaks', pair_parts)]


def warnings_part(verdict: Mapping[str, Any]) -> Any:
    """The verdict's warnings (they do not stop the run), or nothing."""
    if not verdict.get('warnings'):
        return ''
    return html.raw(html.paragraph('Warnings (the run goes on):')
                    + html.bullet_list(verdict['warnings']))
