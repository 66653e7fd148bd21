"""Drift of served traffic against the data the model learnt from, read from the request log.

    python -m monitoring.monitor --request-log LOG --model-dir <pushed version dir> [--out DIR]

Reads the request log the server writes (`python -m serving.server
--request_log_file LOG`: the file and its rotated siblings LOG.1, LOG.2, ...;
or a folder of them; monitoring/traffic.py), takes the window of successful
requests to the version in --model-dir (each distinct image once, the most
recent --max-images), profiles its images as the reference profile in the
version's assets.extra/ profiles the training and eval images
(models/profile.py), and tests each statistic against the reference
(monitoring/drift.py). Writes to --out (default: monitor/ beside the log):
report.html (offline) and verdict.json.

What can be checked depends on the log: without image bytes
(--request_log_include_image_bytes off) only the byte size, the header's width,
height and aspect, and the served answers (predicted class, confidence); with
them also format, channels, brightness, contrast, saturation and the embedding,
all recomputed with the served model.

Exit status: 0 nothing drifted, 3 something drifted, 2 a user error (no log,
not a pushed version, no reference profile, too few images).
"""

import argparse
import base64
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from models import features
from models import profile
from monitoring import drift
from monitoring import report
from monitoring import traffic
from runlog import noise
from serving_formats import request_log_format as fmt

EXIT_OK, EXIT_USAGE, EXIT_DRIFT = 0, 2, 3
# Fewer window images than this is an error: no statistic could tell much.
MIN_IMAGES = 20
# A longer log is checked on its most recent images: the cost of the model's pass
# grows with the window, that of the embedding test with its square (up to
# drift.MMD_MAX_IMAGES).
MAX_IMAGES = 2000


class MonitorError(ValueError):
    """A user error: the message says what to fix."""


class Monitor:
    """A pushed version's reference profile and model, loaded once for any number of windows."""

    def __init__(self, model_dir: str):
        """Reads the reference profile; the model is loaded on the first window with image bytes.

        Raises:
          MonitorError: when model_dir is not a pushed version with a reference profile.
        """
        if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')):
            raise MonitorError(f'{model_dir} is not a pushed model version (no saved_model.pb)')
        self.model_dir = model_dir
        self.reference_path = os.path.join(model_dir, features.ASSETS_EXTRA,
                                           profile.PROFILE_FILE)
        if not os.path.isfile(self.reference_path):
            raise MonitorError(f'{model_dir} has no reference profile ({self.reference_path}); '
                               'it was pushed by a pipeline without ReferenceProfile')
        self.reference = profile.load(self.reference_path)
        name = os.path.basename(os.path.normpath(model_dir))
        self.version = name if name.isdigit() else None
        self._signature = None

    def signature(self):
        """The served model's embedding signature (loaded once)."""
        if self._signature is None:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel
            self._signature = tf.saved_model.load(self.model_dir).signatures[
                features.EMBEDDING_SIGNATURE]
        return self._signature

    def rows(self, images: Sequence[Dict[str, Any]]
             ) -> Tuple[List[Dict[str, Any]], Dict[int, bytes], Dict[str, float]]:
        """(a row per image as the reference's, index -> image bytes, seconds per step).

        Every row has the header keys and the logged answer; images with their bytes
        logged also get the pixel statistics, and the served model's answer and
        embedding (replacing the logged answer: the same model, and so the same
        path as the reference's).
        """
        seconds = {}
        start = time.perf_counter()
        rows, encoded = [], {}
        for index, image in enumerate(images):
            row = profile.header_row(image.get(fmt.IMAGE_WIDTH), image.get(fmt.IMAGE_HEIGHT),
                                     image.get(fmt.IMAGE_BYTES))
            row.update({profile.PREDICTED: image.get(fmt.IMAGE_LABEL),
                        profile.CONFIDENCE: image.get(fmt.IMAGE_SCORE)})
            if image.get(fmt.IMAGE_B64):
                data = base64.b64decode(image[fmt.IMAGE_B64])
                try:
                    row.update(profile.image_row(data))
                    encoded[index] = data
                except (OSError, ValueError):
                    row['unreadable'] = True
            rows.append(row)
        seconds['image properties'] = time.perf_counter() - start
        if encoded:
            if self._signature is None:
                start = time.perf_counter()
                self.signature()
                seconds['load model'] = time.perf_counter() - start
            start = time.perf_counter()
            indices = list(encoded)
            probabilities, embeddings = profile.model_outputs(
                self.signature(), [encoded[i] for i in indices])
            projected = (profile.project(embeddings, self.reference['projection'])
                         if self.reference['projection'] is not None else [None] * len(indices))
            answers = profile.prediction_fields(probabilities, self.reference['class_names'])
            for index, answer, embedding in zip(indices, answers, projected):
                rows[index].update(answer)
                if embedding is not None:
                    rows[index][profile.EMBEDDING] = embedding.tolist()
            seconds['model'] = time.perf_counter() - start
        return rows, encoded, seconds

    def check(self, window: traffic.Window, *, false_alarm_rate: float, seed: int = 0,
              min_images: int = MIN_IMAGES) -> Tuple[Dict[str, Any], Dict[str, bytes]]:
        """(the verdict, sha256 -> bytes of the images shown in the report) of one window.

        Raises:
          MonitorError: when the window has fewer than min_images images.
        """
        if len(window.images) < min_images:
            raise MonitorError(
                f'{len(window.images)} logged images of version {self.version or "any"} '
                f'(of {window.counts["log lines"]} log lines); at least {min_images} are '
                'needed to compare')
        rows, encoded, seconds = self.rows(window.images)
        start = time.perf_counter()
        comparison = drift.compare(self.reference, rows, false_alarm_rate=false_alarm_rate,
                                   seed=seed, min_images=min(min_images, len(rows)))
        seconds['statistics'] = time.perf_counter() - start
        shown = {}
        findings = []
        for finding in comparison.findings:
            images = []
            for index in finding.contributors:
                image, row = window.images[index], rows[index]
                value = row.get(finding.statistic)
                if finding.statistic in (profile.EMBEDDING, profile.PREDICTED) or value is None:
                    value = f"{row.get(profile.PREDICTED)} {row.get(profile.CONFIDENCE) or 0:.2f}"
                elif isinstance(value, float):
                    value = f'{value:.3g}'
                images.append({'sha256': image.get(fmt.IMAGE_SHA256) or '', 'value': str(value),
                               'time': image.get(fmt.TIME)})
                if finding.drifted and index in encoded and image.get(fmt.IMAGE_SHA256):
                    shown[image[fmt.IMAGE_SHA256]] = encoded[index]
            findings.append({
                'statistic': finding.statistic, 'test': finding.test,
                'value': drift.round_sig(finding.value),
                'threshold': drift.round_sig(finding.threshold),
                'p_value': drift.round_sig(finding.p_value), 'drifted': finding.drifted,
                'measure': finding.measure, 'measured': drift.round_sig(finding.measured),
                'reference': drift.round_sig(finding.reference),
                'window_images': finding.window_images,
                'reference_images': finding.reference_images,
                'words': finding.words, 'images': images})
        drifted = [f.statistic for f in comparison.drifted]
        with_bytes = len(encoded)
        span = (f'{_seconds(window.first_time)} to {_seconds(window.last_time)}'
                if window.first_time else 'no times logged')
        summary = (f'{len(rows)} images of version {self.version or "any"}, {span}; '
                   f'false-alarm rate {false_alarm_rate:g}')
        if drifted:
            thresholds = 'its threshold' if len(drifted) == 1 else 'their thresholds'
            line = (f'DRIFT: {", ".join(drifted)} above {thresholds} ({len(drifted)} of '
                    f'{len(findings)} statistics) - {summary}')
        else:
            line = f'No drift: {len(findings)} statistics within their thresholds - {summary}'
        verdict = {
            'drifted': bool(drifted),
            'verdict': line,
            'drifted_statistics': drifted,
            'findings': findings,
            'skipped': comparison.skipped,
            'images': len(rows),
            'image_bytes_logged': (
                'all' if with_bytes == len(rows) else 'none' if not with_bytes
                else f'{with_bytes} of {len(rows)}'),
            'unreadable_images': sum(1 for r in rows if r.get('unreadable')),
            'window': {'first_time': window.first_time, 'last_time': window.last_time,
                       'counts': window.counts},
            'version': self.version,
            'model_dir': self.model_dir,
            'reference': self.reference_path,
            'false_alarm_rate': false_alarm_rate,
            'per_statistic_rate': comparison.per_statistic_rate,
            'permutations': comparison.permutations,
            'checked_text': (
                f'Checked: {", ".join(f["statistic"] for f in findings)}.' + (
                    '' if with_bytes else ' The log holds no image bytes (start the server '
                    'with --request_log_include_image_bytes to also check format, channels, '
                    'brightness, contrast, saturation and the embedding).')),
            'calibration_text': (
                f'Each threshold is what a window of the same size, drawn at random from this '
                f'window and the reference pooled together, exceeds with probability '
                f'{comparison.per_statistic_rate:.2g} ({comparison.permutations} such draws): '
                f'the false-alarm rate {false_alarm_rate:g} of the whole check, split over its '
                f'{len(findings)} statistics. Traffic like the reference is flagged by any '
                f'statistic with probability at most {false_alarm_rate:g}.'),
            'seconds': {step: round(s, 3) for step, s in seconds.items()},
        }
        return verdict, shown


def _seconds(time: str) -> str:
    """A logged ISO time to the second (2024-05-01T12:00:00.123456Z -> 2024-05-01T12:00:00Z)."""
    return time[:19] + 'Z' if len(time) > 19 and time[10] == 'T' else time


def monitor(request_log: str, model_dir: str, out_dir: str, *,
            false_alarm_rate: float = drift.DEFAULT_FALSE_ALARM_RATE,
            min_images: int = MIN_IMAGES, max_images: int = MAX_IMAGES, seed: int = 0,
            checker: Optional[Monitor] = None) -> Dict[str, Any]:
    """Checks the log's window and writes verdict.json and report.html; returns the verdict.

    Args:
      request_log: the log file (its rotations are read too) or a folder of logs.
      model_dir: the pushed version the traffic went to.
      out_dir: where the outputs go.
      false_alarm_rate: chance that traffic like the reference is flagged.
      min_images: fewer images in the window is an error.
      max_images: the window's most images (the most recent).
      seed: of the permutations.
      checker: a Monitor of model_dir already loaded (reused across windows).

    Raises:
      MonitorError: a user error, the message says what to fix.
    """
    started = time.perf_counter()
    checker = checker or Monitor(model_dir)
    try:
        records, unreadable = traffic.read_records(traffic.log_files(request_log))
    except traffic.LogError as error:
        raise MonitorError(str(error)) from None
    window = traffic.select_window(records, checker.version, max_images=max_images,
                                   unreadable_lines=unreadable)
    read_seconds = time.perf_counter() - started
    verdict, shown = checker.check(window, false_alarm_rate=false_alarm_rate, seed=seed,
                                   min_images=min_images)
    verdict['request_log'] = request_log
    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    page = report.render(verdict, shown)
    with open(os.path.join(out_dir, 'report.html'), 'w', encoding='utf-8') as f:
        f.write(page)
    verdict['seconds'] = {'read log': round(read_seconds, 3), **verdict['seconds'],
                          'report': round(time.perf_counter() - start, 3),
                          'total': round(time.perf_counter() - started, 3)}
    with open(os.path.join(out_dir, 'verdict.json'), 'w', encoding='utf-8') as f:
        json.dump(verdict, f, indent=1)
    return verdict


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--request-log', required=True,
                        help='the server\'s --request_log_file (its rotations are read too), '
                             'or a folder of log files')
    parser.add_argument('--model-dir', required=True,
                        help='a pushed version: <serving_dir>/<model_name>/<version>')
    parser.add_argument('--out', help='where to write report.html and verdict.json (default: '
                                      'monitor/ beside the log)')
    parser.add_argument('--false-alarm-rate', type=float, default=drift.DEFAULT_FALSE_ALARM_RATE,
                        help='the chance that traffic like the reference is flagged by any '
                             'statistic (default %(default)s)')
    parser.add_argument('--min-images', type=int, default=MIN_IMAGES,
                        help='fewer images in the window is an error (default %(default)s)')
    parser.add_argument('--max-images', type=int, default=MAX_IMAGES,
                        help='check at most this many images, the most recent (default '
                             '%(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='of the permutations')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    noise.quiet_tensorflow()
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(args.request_log.rstrip('/'))), 'monitor')
    try:
        if not 0 < args.false_alarm_rate < 1:
            raise MonitorError(f'--false-alarm-rate must be in (0, 1), got '
                               f'{args.false_alarm_rate}')
        if args.min_images < 2 or args.max_images < args.min_images:
            raise MonitorError(f'need 2 <= --min-images <= --max-images, got '
                               f'{args.min_images} and {args.max_images}')
        verdict = monitor(args.request_log, args.model_dir, out,
                          false_alarm_rate=args.false_alarm_rate, min_images=args.min_images,
                          max_images=args.max_images, seed=args.seed)
    except MonitorError as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_USAGE
    for finding in verdict['findings']:
        if finding['drifted']:
            print(f"DRIFT {finding['words']}")
    print(verdict['verdict'])
    print(f"report: {os.path.join(out, 'report.html')}")
    return EXIT_DRIFT if verdict['drifted'] else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
