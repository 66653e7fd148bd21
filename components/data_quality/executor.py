"""DataQuality executor: features once, then label issues and near-duplicates."""

import json
import os
import tempfile
import time
from typing import Any, Dict, List, Sequence

import numpy as np
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import examples_io
from components.data_quality import label_issues
from components.data_quality import near_duplicates
from components.data_quality import outputs
from components.data_quality import spec
from models import features
from models import frozen_features
from runlog import progress

# Pairs and photos named in a problem or warning sentence (the CSVs list them all).
_NAMED = 3


def leak_problems(leaks: Dict[str, Dict[str, Any]], max_fraction: float) -> List[str]:
    """One sentence per held-out split whose share of photos with a near-copy in train is
    above max_fraction."""
    problems = []
    for split, leak in leaks.items():
        if leak['share'] > max_fraction:
            examples = '; '.join(f"{p['path']} ~ {p['train_path']} (similarity "
                                 f"{p['similarity']:.2f})" for p in leak['examples'][:_NAMED])
            problems.append(
                f"near-duplicate leak: {leak['photos']} of {leak['of']} {split} photos "
                f"({leak['share']:.1%}) have a near-copy in the train split, above "
                f"max_leak_fraction {max_fraction:.1%}: the {split} accuracy would count "
                f"photos the model has seen. E.g. {examples}. Every pair: "
                f'{outputs.NEAR_DUPLICATES_FILE}')
    return problems


def label_issue_sentence(flagged: int, photos: int, max_fraction: float,
                         top: Sequence[Dict[str, Any]]) -> str:
    """The label issues in one sentence: how many, the setting, the most suspicious."""
    named = '; '.join(f"{r['path']} ({r['given_class']!r}, looks {r['suggested_class']!r})"
                      for r in top[:_NAMED])
    return (f'possible label errors: {flagged} of {photos} photos ({flagged / photos:.1%}) '
            'look like another class to models trained on the other photos '
            f'(max_label_issue_fraction {max_fraction:.1%}); most suspicious: {named}. '
            f'Every one: {outputs.LABEL_ISSUES_FILE}')


class Executor(base_executor.BaseExecutor):
    """Reads the examples once through the frozen base; never fails on bad data."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
        features_artifact = artifact_utils.get_single_instance(output_dict[spec.FEATURES_KEY])
        splits = artifact_utils.decode_split_names(examples.split_names)
        class_names = examples_io.read_class_names(examples.uri)
        weights = exec_properties.get(spec.WEIGHTS_KEY) or None
        image_size = json.loads(exec_properties[spec.IMAGE_SIZE_KEY])
        seconds = {}

        start = time.perf_counter()
        model = frozen_features.featurizer(weights, image_size)
        hashes, mirrored, labels, paths, split_of = [], [], [], [], []
        # A failure halfway leaves no features.npy that looks complete (Writer.abort).
        with frozen_features.Writer(features_artifact.uri,
                                    frozen_features.meta(weights, image_size)) as writer:
            for split in splits:
                for batch in frozen_features.batches(
                        examples_io.split_files(examples.uri, split), image_size, model,
                        thumbnail_side=near_duplicates.THUMBNAIL_SIDE):
                    writer.add(split, batch['features'], batch['labels'], batch['paths'])
                    hashes.append(near_duplicates.perceptual_hashes(batch['thumbnails']))
                    mirrored.append(
                        near_duplicates.perceptual_hashes(batch['thumbnails'][:, :, ::-1]))
                    labels.append(batch['labels'])
                    paths += [p.decode() for p in batch['paths']]
                    split_of += [split] * len(batch['labels'])
        seconds['features'] = time.perf_counter() - start
        labels = np.concatenate(labels)
        with tempfile.TemporaryDirectory() as local:
            pooled = frozen_features.read_features(features_artifact.uri, local)
            start = time.perf_counter()
            probabilities = label_issues.out_of_fold_probabilities(pooled, labels,
                                                                   len(class_names))
            found = label_issues.find(probabilities, labels)
            seconds['label_issues'] = time.perf_counter() - start
            start = time.perf_counter()
            pairs = near_duplicates.find_pairs(
                near_duplicates.embed(pooled), np.concatenate(hashes), np.concatenate(mirrored),
                similarity=exec_properties[spec.SIMILARITY_KEY])
            seconds['near_duplicates'] = time.perf_counter() - start
            del pooled

        issue_rows = [[paths[i], class_names[labels[i]], class_names[found['suggested'][i]],
                       round(float(found['score'][i]), 6), split_of[i]]
                      for i in label_issues.ranked(found)]
        pair_rows = [[paths[a], paths[b], split_of[a], split_of[b], round(float(s), 6), int(d)]
                     for (a, b), s, d in zip(pairs['pairs'], pairs['similarity'],
                                            pairs['hash_distance'])]
        summary = summarize(
            exec_properties=exec_properties, splits=splits, split_of=split_of,
            class_names=class_names, paths=paths, labels=labels,
            probabilities=probabilities, found=found, pairs=pairs, seconds=seconds,
            issue_rows=[dict(zip(outputs.LABEL_ISSUE_COLUMNS, row)) for row in issue_rows])
        outputs.write(report.uri, label_issues=issue_rows, near_duplicates=pair_rows,
                      summary=summary)
        leaked = sum(leak['photos'] for leak in summary['leaks'].values())
        progress.logger().info(
            '%d photos: %d possibly mislabelled, %d near-duplicate pairs, %d held-out '
            'photos with a near-copy in train%s (%s)', len(labels), len(issue_rows),
            len(pair_rows), leaked, ': STOPS the run' if summary['problems'] else '',
            report.uri)
        logging.info('DataQuality: %s', {k: v for k, v in summary.items()
                                         if k not in ('problems', 'warnings')})


def summarize(*, exec_properties: Dict[str, Any], splits: Sequence[str],
              split_of: Sequence[str], class_names: Sequence[str], paths: Sequence[str],
              labels: np.ndarray, probabilities: np.ndarray, found: Dict[str, np.ndarray],
              pairs: Dict[str, Any], seconds: Dict[str, float],
              issue_rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """summary.json: counts, leaks, settings, problems and warnings."""
    photos = len(labels)
    max_leak = exec_properties[spec.MAX_LEAK_FRACTION_KEY]
    max_issues = exec_properties[spec.MAX_LABEL_ISSUE_FRACTION_KEY]
    held_out = [s for s in splits if s != features.TRAIN_SPLIT]
    leaked = near_duplicates.leaks(pairs['pairs'], split_of, features.TRAIN_SPLIT, held_out)
    best_train = {}                   # held-out photo -> its most similar train copy
    for (a, b), similarity in zip(pairs['pairs'], pairs['similarity']):
        for photo, other in ((a, b), (b, a)):
            if split_of[other] == features.TRAIN_SPLIT and photo not in best_train:
                best_train[photo] = (other, float(similarity))
    leaks = {}
    for split in held_out:
        size = sum(1 for s in split_of if s == split)
        leaks[split] = {
            'photos': len(leaked[split]), 'of': size,
            'share': len(leaked[split]) / size if size else 0.0,
            'examples': [{'path': paths[p], 'train_path': paths[best_train[p][0]],
                          'similarity': best_train[p][1]}
                         for p in sorted(leaked[split], key=lambda p: -best_train[p][1])[:10]]}
    problems = leak_problems(leaks, max_leak)
    warnings = []
    flagged = len(issue_rows)
    if flagged:
        sentence = label_issue_sentence(flagged, photos, max_issues, issue_rows)
        (problems if flagged / photos > max_issues else warnings).append(sentence)
    split_pairs = [(split_of[a], split_of[b]) for a, b in pairs['pairs']]
    return {
        'photos': photos,
        'splits': {s: sum(1 for x in split_of if x == s) for s in splits},
        'class_names': list(class_names),
        'label_issues': {
            'flagged': flagged, 'share': flagged / photos if photos else 0.0,
            'thresholds': dict(zip(class_names, map(float, found['thresholds']))),
            'folds': label_issues.folds_for(labels),
            'out_of_fold_accuracy': float(np.mean(probabilities.argmax(axis=1) == labels)),
        },
        'near_duplicates': {
            'pairs': len(split_pairs),
            'within_split': sum(1 for a, b in split_pairs if a == b),
            'across_splits': sum(1 for a, b in split_pairs if a != b),
            'search': pairs['search'],
        },
        'leaks': leaks,
        'settings': {key: exec_properties[key] for key in (
            spec.SIMILARITY_KEY, spec.MAX_LEAK_FRACTION_KEY, spec.MAX_LABEL_ISSUE_FRACTION_KEY)},
        'problems': problems,
        'warnings': warnings,
        'seconds': {k: round(v, 2) for k, v in seconds.items()},
    }
