"""Drift and skew of served traffic against the data the model learnt from.

    python -m serving.monitor --request-log LOG --model-dir <pushed version dir> [--out DIR]

Reads the request log the server writes (`python -m serving.server
--request_log_file LOG`: the file and its rotated siblings LOG.1, LOG.2, ...;
or a folder of them), keeps the successful requests of the model version in
--model-dir, profiles their images as the reference profile in the version's
assets.extra/ profiles the training and eval images (models/profile.py), and
compares the two (serving/drift.py). Writes to --out (default: monitor/ beside
the log): report.html (offline), anomalies.pbtxt (TFDV's Anomalies, skew
comparators with the calibrated thresholds) and verdict.json.

What can be checked depends on the log: without image bytes
(--request_log_include_image_bytes off) only the byte size, the header's width,
height and aspect, and the served answers (predicted class, confidence); with
them also format, channels, brightness, contrast, saturation and the embedding
distance, all recomputed with the served model.

Exit status: 0 nothing drifted, 3 something drifted, 2 a user error (no log,
not a pushed version, no reference profile, too few images).
"""

import argparse
import base64
import glob
import html
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runlog import noise
from serving import drift

EXIT_OK, EXIT_USAGE, EXIT_DRIFT = 0, 2, 3
MIN_IMAGES = 20


class MonitorError(ValueError):
    """A user error: the message says what to fix."""


def log_files(request_log: str) -> List[str]:
    """The log and its rotations, oldest first (LOG.5 ... LOG.1, LOG), or a folder's files."""
    if os.path.isdir(request_log):
        paths = [os.path.join(request_log, name) for name in os.listdir(request_log)
                 if os.path.isfile(os.path.join(request_log, name))]
    elif os.path.isfile(request_log):
        rotation = re.compile(re.escape(request_log) + r'\.\d+')
        paths = [request_log] + [p for p in glob.glob(glob.escape(request_log) + '.*')
                                 if rotation.fullmatch(p)]
    else:
        raise MonitorError(f'request log {request_log} does not exist')

    def age(path: str) -> Tuple[str, int]:
        match = re.search(r'\.(\d+)$', path)
        return (path[:match.start()], -int(match.group(1))) if match else (path, 0)
    return sorted(paths, key=age)


def read_records(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """Every JSON line of the files (lines that are not JSON are skipped and counted)."""
    records = []
    for path in paths:
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    records.append({'status': 'UNREADABLE'})
    return records


def select_images(records: Sequence[Dict[str, Any]], version: Optional[str]
                  ) -> Tuple[List[Dict[str, Any]], Dict[str, int]]:
    """The image entries of successful requests to `version` (all versions when None)."""
    counts = {'records': len(records), 'not_ok': 0, 'other_versions': 0, 'used': 0}
    images = []
    for record in records:
        if record.get('status') != 'OK':
            counts['not_ok'] += 1
            continue
        if version is not None and str(record.get('version')) != version:
            counts['other_versions'] += 1
            continue
        counts['used'] += 1
        for image in record.get('images', []):
            images.append({**image, 'api': record.get('api'),
                           'entrypoint': record.get('entrypoint')})
    return images, counts


def traffic_profile(images: Sequence[Dict[str, Any]], model_dir: str, class_names: Sequence[str]):
    """Rows (as the reference's) and embeddings of the logged images.

    With image bytes every row key is recomputed with the served model; without
    them only the header keys and the served answers can be filled.
    """
    from models import features  # pylint: disable=import-outside-toplevel
    from models import profile  # pylint: disable=import-outside-toplevel
    with_bytes = [i for i in images if i.get('b64')]
    if with_bytes and len(with_bytes) == len(images):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        data = [base64.b64decode(i['b64']) for i in images]
        signature = tf.saved_model.load(model_dir).signatures[features.EMBEDDING_SIGNATURE]
        probabilities, embeddings = profile.model_outputs(signature, data)
        rows = [{**profile.image_row(d), **answer}
                for d, answer in zip(data, profile.prediction_fields(probabilities, class_names))]
        return rows, embeddings, True
    rows = []
    for image in images:
        row = profile.header_row(image.get('width'), image.get('height'), image.get('bytes'))
        row.update(predicted=image.get('label'), confidence=image.get('score'))
        rows.append(row)
    return rows, None, False


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in headers)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
                   for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


def render(verdict: Dict[str, Any]) -> str:
    """The offline HTML report (no scripts, no external resources)."""
    findings = verdict['findings']
    status = 'DRIFT' if verdict['drifted'] else 'no drift'
    parts = [
        f'<h1>Monitoring: {html.escape(verdict["model_dir"])}</h1>',
        f'<p class="{"bad" if verdict["drifted"] else "ok"}"><b>{status}</b>: '
        f'{len(verdict["drifted_statistics"])} of {len(findings)} statistics above their '
        'threshold.</p>',
        '<ul>' + ''.join(f'<li>{html.escape(f["words"])}</li>' for f in findings
                         if f['drifted']) + '</ul>' if verdict['drifted'] else '',
        f'<p>{html.escape(verdict["window_text"])}</p>',
        f'<p>{html.escape(verdict["checked_text"])}</p>',
        '<h2>Statistics</h2>',
        _table([[f['statistic'], f['measure'], f['value'], f['threshold'], f['typical'],
                 'yes' if f['drifted'] else 'no', f['words']] for f in findings],
               ['statistic', 'measure', 'traffic vs reference', 'threshold',
                'typical in-distribution value (median of resamples)', 'drifted', 'in words']),
        f'<p>{html.escape(verdict["calibration_text"])}</p>',
        '<h2>Requests</h2>',
        _table([[k, v] for k, v in verdict['requests'].items()], ['requests', 'count']),
        f'<p>Reference profile: {html.escape(verdict["reference"])}. TFDV anomalies: '
        f'{html.escape(verdict["anomalies"])}.</p>',
    ]
    style = ('body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:'
             'collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}'
             '.bad{color:#b00}.ok{color:#070}')
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Monitoring: {status}'
            f'</title><style>{style}</style></head><body>{"".join(parts)}</body></html>')


def monitor(request_log: str, model_dir: str, out_dir: str, *, false_alarm_rate: float,
            resamples: int, min_images: int = MIN_IMAGES) -> Dict[str, Any]:
    """Runs the whole check and writes its outputs; returns the verdict."""
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    from models import profile  # pylint: disable=import-outside-toplevel

    if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')):
        raise MonitorError(f'{model_dir} is not a pushed model version (no saved_model.pb)')
    reference_path = os.path.join(model_dir, features.ASSETS_EXTRA, profile.PROFILE_FILE)
    if not os.path.isfile(reference_path):
        raise MonitorError(f'{model_dir} has no reference profile ({reference_path}); it was '
                           'pushed by a pipeline without ReferenceProfile')
    reference = profile.load(reference_path)
    name = os.path.basename(os.path.normpath(model_dir))
    version = name if name.isdigit() else None
    images, counts = select_images(read_records(log_files(request_log)), version)
    if len(images) < min_images:
        raise MonitorError(
            f'{len(images)} logged images of version {version or "any"} in {request_log} '
            f'(of {counts["records"]} records); at least {min_images} are needed to compare')
    rows, embeddings, with_bytes = traffic_profile(images, model_dir, reference['class_names'])
    comparison = drift.compare(reference, rows, embeddings, false_alarm_rate=false_alarm_rate,
                               resamples=resamples)

    os.makedirs(out_dir, exist_ok=True)
    anomalies_path = os.path.join(out_dir, 'anomalies.pbtxt')
    with open(anomalies_path, 'w', encoding='utf-8') as f:
        f.write(text_format.MessageToString(comparison.anomalies)
                if comparison.anomalies is not None else '')
    findings = [{'statistic': f.statistic, 'measure': f.measure,
                 'value': drift.round_sig(f.value), 'threshold': drift.round_sig(f.threshold),
                 'typical': drift.round_sig(f.typical), 'drifted': f.drifted, 'words': f.words}
                for f in comparison.findings]
    checked = [f.statistic for f in comparison.findings]
    verdict = {
        'drifted': bool(comparison.drifted),
        'drifted_statistics': [f.statistic for f in comparison.drifted],
        'findings': findings,
        'images': len(images),
        'image_bytes_logged': with_bytes,
        'requests': counts,
        'version': version,
        'model_dir': model_dir,
        'reference': reference_path,
        'anomalies': anomalies_path,
        'false_alarm_rate': false_alarm_rate,
        'family_false_alarm_rate': comparison.family_false_alarm_rate,
        'window_text': (f'{len(images)} images from {counts["used"]} successful requests of '
                        f'version {version or "any"} ({counts["not_ok"]} failed requests and '
                        f'{counts["other_versions"]} of other versions left out).'),
        'checked_text': (
            f'Checked: {", ".join(checked)}.' + (
                '' if with_bytes else ' The log holds no image bytes (start the server with '
                '--request_log_include_image_bytes to also check format, channels, '
                'brightness, contrast, saturation and the embedding distance).')),
        'calibration_text': (
            f'Thresholds, calibrated on {comparison.resamples} in-distribution windows drawn '
            f'from the reference itself ({len(images)} images each, bootstrapped against a '
            f'bootstrapped reference; for the embedding {comparison.calibration_window} '
            'reference images against the rest): the false-alarm rate '
            f'{false_alarm_rate:g} is split over the {len(findings)} statistics '
            f'({comparison.per_statistic_rate:.2g} each), and each threshold is the larger of '
            'the empirical quantile and that of a gamma distribution fitted to the draws. On '
            f'those draws, some statistic exceeded its threshold in '
            f'{comparison.family_false_alarm_rate:.1%} of them.'),
    }
    with open(os.path.join(out_dir, 'verdict.json'), 'w', encoding='utf-8') as f:
        json.dump(verdict, f, indent=1)
    with open(os.path.join(out_dir, 'report.html'), 'w', encoding='utf-8') as f:
        f.write(render(verdict))
    return verdict


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--request-log', required=True,
                        help='the server\'s --request_log_file (its rotations are read too), '
                             'or a folder of log files')
    parser.add_argument('--model-dir', required=True,
                        help='a pushed version: <serving_dir>/<model_name>/<version>')
    parser.add_argument('--out', help='where to write report.html, anomalies.pbtxt, '
                                      'verdict.json (default: monitor/ beside the log)')
    parser.add_argument('--false-alarm-rate', type=float, default=drift.DEFAULT_FALSE_ALARM_RATE,
                        help='the chance that in-distribution traffic is flagged by any '
                             'statistic (split evenly over them)')
    parser.add_argument('--resamples', type=int, default=drift.DEFAULT_RESAMPLES,
                        help='calibration draws of the reference against itself')
    parser.add_argument('--min-images', type=int, default=MIN_IMAGES)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    noise.quiet_tensorflow()
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(args.request_log.rstrip('/'))), 'monitor')
    try:
        verdict = monitor(args.request_log, args.model_dir, out,
                          false_alarm_rate=args.false_alarm_rate, resamples=args.resamples,
                          min_images=args.min_images)
    except MonitorError as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_USAGE
    for finding in verdict['findings']:
        if finding['drifted']:
            print(f"DRIFT {finding['statistic']}: {finding['words']}")
    print(f"{'drift' if verdict['drifted'] else 'no drift'}: {verdict['images']} images, "
          f"{len(verdict['findings'])} statistics; report {os.path.join(out, 'report.html')}")
    return EXIT_DRIFT if verdict['drifted'] else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
