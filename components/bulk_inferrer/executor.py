"""BulkInferrer's work: score every photo under a folder with a model directory.

`score_folder` is the whole job; the TFX Executor and the command line
(`python -m components.bulk_inferrer`) both call it. The folder is listed first
(listing.walk: every entry, sorted), so the progress line knows the total. A reader
thread reads the files of the next batches and checks their headers
(models/image_header.py) while the model scores the current one (the signature
decodes and runs the model on both cores; reading and the header check overlap
with it). Rows are written as they come, to
`<out>.partial`, renamed to `<out>` at the end: a stopped run keeps what it scored.
"""

import csv
import json
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import tensorflow as tf
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from components.bulk_inferrer import listing
from components.bulk_inferrer import rows
from components.bulk_inferrer import scoring
from components.bulk_inferrer import spec
from components.image_example_gen import files
from models import features
from models import image_header
from models import read_ahead
from runlog import progress

# Seconds between two progress lines on a long run.
PROGRESS_SECONDS = 10.0
PARTIAL_SUFFIX = '.partial'

# (entry, bytes or None, reason or None) for each listed entry, in listing order.
_Item = Tuple[files.Listed, Optional[bytes], Optional[str]]


def read_batches(images_dir: str, listed: List[files.Listed], batch_size: int,
                 max_file_bytes: int, max_pixels: int, symlinks: str = features.SYMLINKS
                 ) -> Iterator[List[_Item]]:
    """Listed entries with their bytes (or why not), in order, grouped so that each group
    holds batch_size readable images (skipped and bad entries ride along)."""
    batch: List[_Item] = []
    readable = 0
    for entry in listed:
        data, reason = None, entry.ignored or entry.bad
        if reason is None:
            try:
                data = files.read_file(images_dir, entry.path, max_file_bytes,
                                       follow=symlinks != files.NONE)
                image_header.checked(data, max_pixels=max_pixels)
            except image_header.BadImageError as e:
                data, reason = None, e.reason
            except OSError as e:
                data, reason = None, files.reason_of(e)
        if data is None and not listing.is_skipped(entry):
            reason = files.link_noted(reason, entry.path, entry.link)
        batch.append((entry, data, reason))
        readable += data is not None
        if readable == batch_size:
            yield batch
            batch, readable = [], 0
    if batch:
        yield batch


def score_folder(images_dir: str, model_dir: str, scores_path: str, *,
                 batch_size: int = spec.BATCH_SIZE,
                 max_file_bytes: int = features.MAX_FILE_BYTES,
                 max_pixels: int = features.MAX_PIXELS,
                 symlinks: str = features.SYMLINKS,
                 say: Optional[Callable[[str], None]] = None) -> Dict:
    """Scores every image file under images_dir; writes the CSV and its summary.

    Args:
      images_dir: a local folder, any depth.
      model_dir: a SavedModel with the serving signature, or a folder holding one
        (scoring.resolve_model_dir: a Trainer's model, a serving base folder).
      scores_path: the CSV to write (the summary goes beside it: spec.summary_path).
      batch_size: images per call of the signature.
      max_file_bytes: larger files are bad, not read.
      max_pixels: larger images are bad, not decoded.
      symlinks: which symbolic links are followed (features.SYMLINK_POLICIES).
      say: where progress lines go (default: the progress logger).

    Returns:
      The summary (also written as JSON): counts by status, reasons, accuracy when
      folder names are classes, images/s.

    Raises:
      NotADirectoryError: images_dir is not a folder.
      ValueError: no usable model there; batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    say = say or (lambda line: progress.logger().info('%s', line))
    start = time.perf_counter()
    model_dir = scoring.resolve_model_dir(model_dir)
    scorer = scoring.Scorer(model_dir)
    loaded = time.perf_counter()
    listed = list(listing.walk(images_dir, symlinks))
    to_read = sum(not listing.is_skipped(entry) for entry in listed)
    say(f'bulk inference: {len(listed)} files under {images_dir}, {to_read} with an image '
        f'name; model {model_dir}')
    listed_at = time.perf_counter()
    tally = rows.Tally(scorer.class_names)
    scored_images, last_line = 0, listed_at
    partial = scores_path + PARTIAL_SUFFIX
    if os.path.dirname(scores_path):
        tf.io.gfile.makedirs(os.path.dirname(scores_path))
    with tf.io.gfile.GFile(partial, 'w') as out:
        writer = csv.DictWriter(out, rows.columns(scorer.class_names), lineterminator='\n')
        writer.writeheader()
        # The next batches are read and decoded by a thread of their own meanwhile.
        for batch in read_ahead.read_ahead(read_batches(
                images_dir, listed, batch_size, max_file_bytes, max_pixels, symlinks),
                name='bulk-inferrer-reader'):
            answers = iter(scorer.score([data for _, data, _ in batch if data is not None]))
            for entry, data, reason in batch:
                path = files.display(entry.path)
                if data is None:
                    status = rows.SKIPPED if listing.is_skipped(entry) else rows.BAD
                    values = rows.row(path, scorer.class_names, status=status, reason=reason)
                else:
                    answer = next(answers)
                    values = (rows.row(path, scorer.class_names, status=rows.BAD, reason=answer)
                              if isinstance(answer, str) else
                              rows.row(path, scorer.class_names, status=rows.SCORED,
                                       probabilities=answer))
                    scored_images += values[rows.STATUS] == rows.SCORED
                writer.writerow(values)
                tally.add(values)
            now = time.perf_counter()
            if now - last_line >= PROGRESS_SECONDS and tally.files < len(listed):
                rate = scored_images / (now - listed_at)
                left = (to_read - tally.statuses[rows.SCORED] - tally.statuses[rows.BAD]) / max(
                    rate, 1e-9)
                say(f'{tally.files}/{len(listed)} files, {rate:.0f} images/s, about '
                    f'{left:.0f} s left')
                last_line = now
    done = time.perf_counter()
    tf.io.gfile.rename(partial, scores_path, overwrite=True)
    summary = {
        'images_dir': images_dir, 'model': model_dir, 'scores': scores_path,
        'class_names': scorer.class_names, **tally.summary(),
        'images_per_second': scored_images / (done - listed_at) if done > listed_at else 0.0,
        'seconds': {'load_model': loaded - start, 'list': listed_at - loaded,
                    'score': done - listed_at},
        'batch_size': batch_size, 'max_file_bytes': max_file_bytes, 'max_pixels': max_pixels,
        'symlinks': symlinks,
    }
    with tf.io.gfile.GFile(spec.summary_path(scores_path), 'w') as f:
        json.dump(summary, f, indent=1)
    for line in summary_lines(summary):
        say(line)
    return summary


def summary_lines(summary: Dict) -> List[str]:
    """What a finished run prints: counts, accuracy if any, throughput, the CSV."""
    lines = [f'{summary["files"]} files: {summary[rows.SCORED]} scored, {summary[rows.BAD]} '
             f'bad, {summary[rows.SKIPPED]} skipped (the reason of each is in the CSV)']
    for reason, count in list(summary['reasons'].items())[:3]:
        lines.append(f'  {count} x {reason}')
    accuracy = rows.accuracy_line(summary['accuracy'])
    if accuracy:
        lines.append(accuracy)
    lines.append(f'{summary["images_per_second"]:.1f} images/s ({summary[rows.SCORED]} images '
                 f'in {summary["seconds"]["score"]:.1f} s, batches of {summary["batch_size"]})')
    lines.append(f'scores: {summary["scores"]}')
    return lines


class Executor(base_executor.BaseExecutor):
    """Scores the folder with the model, unless the model was not blessed."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_KEY])
        result = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.INFERENCE_RESULT_KEY])
        scores_path = os.path.join(result.uri, spec.SCORES_FILE)
        blessing = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY)
        if blessing and not model_utils.is_model_blessed(blessing[0]):
            # As TFX's BulkInferrer: an unblessed model scores nothing.
            reason = 'the model was not blessed by the Evaluator: nothing scored'
            progress.logger().info('bulk inference: %s', reason)
            result.set_string_custom_property(spec.NOT_SCORED_REASON_PROPERTY, reason)
            with tf.io.gfile.GFile(spec.summary_path(scores_path), 'w') as f:
                json.dump({'not_scored': reason}, f)
            return
        summary = score_folder(
            exec_properties[spec.IMAGES_DIR_KEY], model.uri, scores_path,
            batch_size=exec_properties[spec.BATCH_SIZE_KEY],
            max_file_bytes=exec_properties[spec.MAX_FILE_BYTES_KEY],
            max_pixels=exec_properties[spec.MAX_PIXELS_KEY],
            symlinks=exec_properties[spec.SYMLINKS_KEY])
        result.set_int_custom_property(spec.SCORED_PROPERTY, summary[rows.SCORED])
        result.set_int_custom_property(spec.BAD_PROPERTY, summary[rows.BAD])
