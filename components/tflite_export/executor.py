"""TFLiteExport's work: convert the trained model to TFLite and check each variant.

What is converted is the model on the Transform output (models/tflite_export.py says
why); the pixels come from the SavedModel's own `transform_features` signature, so the
check feeds the converted models exactly what the SavedModel computes from the same
images. The int8 calibration uses train images (a class-balanced sample from the start
of the split); the check runs every variant on the first eval images, EVAL_BATCH at a
time, keeping only their probabilities (memory flat in the split's size), each variant in
a thread of its own (CHECK_THREADS), against the SavedModel's answers on the same images:
the Trainer's answers on every eval photo (models/eval_answers.py: the exported model's,
as the InfraValidator checks in the server), looked up by the photo's path, and where the
Trainer recorded none for a photo (no ModelRun given, eval data without paths), the
SavedModel run on that batch in this thread. Every variant is
converted from one SavedModel holding the pixels function (`lowered`), saved once. The
report's `seconds` says where the time went (docs/benchmarks.md: TFLiteExport's time).
"""

import collections
import concurrent.futures
import contextlib
import json
import os
import shutil
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components import examples_io
from components.tflite_export import report
from models import eval_answers
from models import features
from models import tflite_check
from models import tflite_export
from runlog import progress

# Eval images run through the SavedModel and the converted models at once.
EVAL_BATCH = 32
# Interpreter threads of each converted model in the check. Each model runs in a thread of
# its own, one image at a time: on 2 loaded cores, 2 interpreter threads (XNNPACK's workers
# wait for each other) were 1.7-32x slower than 1 at the same batch size, and at 1 thread
# batch 1 was as fast as batch 32 or faster (docs/benchmarks.md: TFLiteExport's time).
CHECK_THREADS = 1
# The report's `seconds`: the phases' wall time (besides `convert` and `check`, by variant).
SECONDS_LOAD = 'load'                                # the SavedModel, its pixels function
SECONDS_CALIBRATION_PIXELS = 'calibration_pixels'    # int8's train images to pixels
SECONDS_LOWERING = 'lowering'                        # the SavedModel every variant converts from
SECONDS_CHECK = 'check_pass'                         # the check's wall time, of which:
SECONDS_EVAL_PIXELS = 'eval_pixels'                  #   reading and decoding the eval images
SECONDS_REFERENCE = 'reference'                      #   the SavedModel's answers (looked up,
                                                     #   or run beside the variants, each
                                                     #   its own in `check`)
SECONDS_WRITE = 'write'                              # the files
# The report's `reference`: eval images whose SavedModel answers were the Trainer's
# (looked up by path) or the SavedModel's run here.
REFERENCE_RECORDED, REFERENCE_RUN = 'trainer_answers', 'saved_model_run'
_IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
PREPROCESSING = ('encoded image -> tf.io.decode_image (3 channels) -> bilinear resize to the '
                 'input size -> x / 127.5 - 1 (models/preprocessing.py), as the SavedModel does')


def labelled_records(examples_uri: str, split: str
                     ) -> Iterator[Tuple[bytes, int, Optional[bytes]]]:
    """(serialized Example, label, path or None) of a split, in file order.

    Raises:
      FileNotFoundError: the split has no files.
    """
    for raw in examples_io.iter_records(examples_uri, split):
        example = examples_io.parse(raw)
        yield (raw, int(examples_io.value(example, features.LABEL_KEY)),
               examples_io.value_or_none(example, features.PATH_KEY))


def balanced_records(records: Iterator[Tuple[bytes, int, Optional[bytes]]], count: int,
                     classes: int) -> List[bytes]:
    """Up to `count` records, as many of each class as there are (up to count / classes),
    taken from the start and interleaved class by class. Stops reading once all are found."""
    per_class = -(-count // classes)
    chosen: Dict[int, List[bytes]] = {label: [] for label in range(classes)}
    for raw, label, _ in records:
        if len(chosen[label]) < per_class:
            chosen[label].append(raw)
            if all(len(found) >= per_class for found in chosen.values()):
                break
    interleaved = [found[i] for i in range(per_class) for found in chosen.values()
                   if i < len(found)]
    return interleaved[:count]


def to_pixels(transform, serialized: Sequence[bytes]) -> np.ndarray:
    """The Transform output (float32 [N, H, W, 3]) of serialized Examples, by the model's
    own transform_features signature."""
    return transform(examples=tf.constant(list(serialized)))[_IMAGE_XF].numpy()


def batches(records: Iterator[Tuple[bytes, int, Optional[bytes]]], limit: int,
            size: int) -> Iterator[Tuple[List[bytes], np.ndarray, List[Optional[bytes]]]]:
    """(serialized, labels, paths) of the first `limit` records, `size` at a time."""
    chunk: List[Tuple[bytes, int, Optional[bytes]]] = []
    for index, record in enumerate(records):
        if index >= limit:
            break
        chunk.append(record)
        if len(chunk) == size:
            yield _columns(chunk)
            chunk = []
    if chunk:
        yield _columns(chunk)


def _columns(chunk: List[Tuple[bytes, int, Optional[bytes]]]
             ) -> Tuple[List[bytes], np.ndarray, List[Optional[bytes]]]:
    return [r[0] for r in chunk], np.array([r[1] for r in chunk]), [r[2] for r in chunk]


def check(pixels_function, runners: Dict[str, tflite_export.Runner],
          eval_batches: Iterator[Tuple[np.ndarray, np.ndarray, Sequence[bytes]]],
          seconds: Optional[Dict[str, float]] = None,
          recorded: Optional[Mapping[bytes, np.ndarray]] = None,
          references: Optional[Dict[str, int]] = None) -> Dict[str, tflite_check.Comparison]:
    """Each runner against the SavedModel on (pixels, labels, paths) batches.

    Each runner answers a batch one image at a time in a thread of its own (CHECK_THREADS
    says why); the answers are the same as a whole batch's. The SavedModel's answers: a
    batch's `recorded` ones (path -> probabilities: the Trainer's) when every one of its
    paths has them, else its pixels function's on the batch, in this thread meanwhile.
    seconds: if given, each phase's own time is added to it: SECONDS_EVAL_PIXELS (making
    the batches), SECONDS_REFERENCE (the SavedModel's answers), each variant's by its name.
    references: if given, the images answered each way are counted into it
    (REFERENCE_RECORDED, REFERENCE_RUN).
    """
    seconds = collections.defaultdict(float) if seconds is None else seconds
    references = collections.Counter() if references is None else references
    recorded = recorded or {}
    reference, answers, labels = [], {variant: [] for variant in runners}, []

    def one_by_one(variant: str, pixels: np.ndarray) -> np.ndarray:
        with _timed(seconds, variant):
            return runners[variant].run(pixels, 1)

    batches_left = iter(eval_batches)
    with concurrent.futures.ThreadPoolExecutor(max(1, len(runners))) as pool:
        while True:
            with _timed(seconds, SECONDS_EVAL_PIXELS):
                batch = next(batches_left, None)
            if batch is None:
                break
            pixels, batch_labels, paths = batch
            running = {variant: pool.submit(one_by_one, variant, pixels) for variant in runners}
            with _timed(seconds, SECONDS_REFERENCE):
                if all(path in recorded for path in paths):
                    reference.append(np.stack([recorded[path] for path in paths]))
                    references[REFERENCE_RECORDED] += len(paths)
                else:
                    reference.append(pixels_function(tf.constant(pixels))[
                        features.PROBABILITIES_OUTPUT].numpy())
                    references[REFERENCE_RUN] += len(paths)
            for variant, future in running.items():
                answers[variant].append(future.result())
            labels.append(batch_labels)
    if not labels:
        raise ValueError('the eval split has no images to check the TFLite models on')
    reference, labels = np.concatenate(reference), np.concatenate(labels)
    return {variant: tflite_check.compare(reference, np.concatenate(outputs), labels)
            for variant, outputs in answers.items()}


@contextlib.contextmanager
def lowered(function) -> Iterator[str]:
    """A temporary folder holding `function` as a SavedModel's serving_default: what
    tflite_export.convert(function, ..., signatures=True) saves on every call
    (tensorflow/lite/python/lite.py: TFLiteFrozenGraphConverterV2), saved once here for
    every variant. Its trackable holds only the function's variables: with the whole loaded
    SavedModel, all of its signatures would be saved again."""
    trackable = tf.Module()
    trackable.captured_variables = list(function.variables)
    folder = tempfile.mkdtemp(prefix='tflite-lowered-')
    try:
        tf.saved_model.save(trackable, folder,
                            signatures={features.SERVING_SIGNATURE: function},
                            options=tf.saved_model.SaveOptions(save_debug_info=True))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def export_tflite(model_dir: str, examples_uri: str, out_uri: str, *,
                  variants: Sequence[str],
                  max_accuracy_drop: float = tflite_check.MAX_ACCURACY_DROP,
                  representative_images: int = tflite_export.REPRESENTATIVE_IMAGES,
                  eval_images: int = tflite_export.EVAL_IMAGES,
                  threads: int = CHECK_THREADS,
                  representative: Optional[Callable[[], np.ndarray]] = None,
                  model_run_uri: Optional[str] = None) -> Dict:
    """Converts the SavedModel at model_dir to each variant, checks each, writes them.

    Args:
      model_dir: the Trainer's SavedModel (with export.PIXELS_FUNCTION).
      examples_uri: ExampleGen's Examples artifact (train split: calibration; eval: check).
      out_uri: the TFLiteModel artifact's folder (report.py lays it out).
      variants: of tflite_export.VARIANTS.
      max_accuracy_drop: a variant losing more accuracy than this is refused.
      representative_images: train images for the int8 calibration.
      eval_images: eval images (the first of the split) each variant is checked on.
      threads: each converted model's interpreter threads in the check.
      representative: pixels [N, H, W, 3] to calibrate on instead of the train images
        (a test makes a deliberately bad int8 model with it).
      model_run_uri: the Trainer's ModelRun: its answers on every eval photo are the
        SavedModel's in the check (recorded_answers); None: the SavedModel runs on them.

    Returns:
      The report written to tflite_report.json.

    Raises:
      ValueError: an unknown variant, a model without PIXELS_FUNCTION, no eval images.
    """
    for variant in variants:
        if variant not in tflite_export.VARIANTS:
            raise ValueError(f'TFLite variant must be one of {tflite_export.VARIANTS}, '
                             f'got {variant!r}')
    phases: Dict[str, float] = collections.defaultdict(float)
    with _timed(phases, SECONDS_LOAD):
        function, loaded = tflite_export.saved_model_pixels_function(model_dir)
        transform = loaded.signatures[features.TRANSFORM_SIGNATURE]
        class_names = examples_io.read_class_names(examples_uri)
    calibration = None
    if tflite_export.INT8 in variants:
        with _timed(phases, SECONDS_CALIBRATION_PIXELS):
            calibration = representative() if representative is not None else to_pixels(
                transform, balanced_records(labelled_records(examples_uri, features.TRAIN_SPLIT),
                                            representative_images, len(class_names)))
    contents, seconds, failures = {}, {}, {}
    with contextlib.ExitStack() as stack:
        with _timed(phases, SECONDS_LOWERING):
            folder = stack.enter_context(lowered(function))
        for variant in variants:
            start = time.perf_counter()
            try:
                contents[variant] = tflite_export.convert(
                    folder, variant, representative=None if calibration is None else (
                        lambda: (calibration[i:i + 1] for i in range(len(calibration)))))
            except Exception as e:  # pylint: disable=broad-except
                # The converter raises several types (ConverterError, ValueError,
                # RuntimeError); a variant that cannot be converted is that variant's
                # problem, not the run's.
                failures[variant] = (f'conversion failed: {type(e).__name__}: '
                                     f'{_first_line(str(e))}')
                progress.logger().info('TFLite %s: REFUSED: %s', variant, failures[variant])
            seconds[variant] = time.perf_counter() - start
    runners = {variant: tflite_export.Runner(content, threads)
               for variant, content in contents.items()}
    eval_batches = ((to_pixels(transform, serialized), labels, paths)
                    for serialized, labels, paths in
                    batches(labelled_records(examples_uri, features.EVAL_SPLIT), eval_images,
                            EVAL_BATCH))
    checked: Dict[str, float] = collections.defaultdict(float)
    references: Dict[str, int] = collections.Counter()
    with _timed(phases, SECONDS_CHECK):
        comparisons = check(function, runners, eval_batches, checked,
                            recorded_answers(model_run_uri), references)
    start = time.perf_counter()
    results = {}
    for variant, reason in failures.items():
        results[variant] = {'ready': False, 'reason': reason, 'file': None,
                            'convert_seconds': round(seconds[variant], 2)}
    for variant in contents:
        comparison = comparisons[variant]
        reason = tflite_check.refusal(comparison, max_accuracy_drop)
        path = report.model_file(out_uri, variant, ready=reason is None)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, 'wb') as f:
            f.write(contents[variant])
        progress.logger().info('%s', tflite_check.describe(variant, len(contents[variant]),
                                                            comparison, reason))
        results[variant] = {
            'ready': reason is None, 'reason': reason,
            'file': os.path.relpath(path, out_uri), 'size_bytes': len(contents[variant]),
            'convert_seconds': round(seconds[variant], 2),
            'images': comparison.images, 'reference_accuracy': comparison.reference_accuracy,
            'accuracy': comparison.accuracy, 'accuracy_drop': comparison.accuracy_drop,
            'agreement': comparison.agreement,
            'max_abs_difference': comparison.max_abs_difference,
        }
    results = {variant: results[variant] for variant in variants}
    shape = function.structured_input_signature[0][0].shape
    result = {
        'model': model_dir,
        'class_names': class_names,
        'input': {'name': _IMAGE_XF, 'shape': [None, *shape[1:].as_list()],
                  'dtype': 'float32', 'range': [-1.0, 1.0], 'preprocessing': PREPROCESSING},
        'output': features.PROBABILITIES_OUTPUT,
        'max_accuracy_drop': max_accuracy_drop,
        'representative_images': 0 if calibration is None else len(calibration),
        'reference': {key: references[key] for key in (REFERENCE_RECORDED, REFERENCE_RUN)},
        'variants': results,
    }
    phases[SECONDS_WRITE] = time.perf_counter() - start
    phases.update({key: checked.pop(key, 0.0) for key in (SECONDS_EVAL_PIXELS, SECONDS_REFERENCE)})
    result['seconds'] = {
        **{name: round(value, 2) for name, value in phases.items()},
        'convert': {variant: round(value, 2) for variant, value in seconds.items()},
        'check': {variant: round(value, 2) for variant, value in checked.items()}}
    with tf.io.gfile.GFile(os.path.join(out_uri, report.CLASS_NAMES_FILE), 'w') as f:
        f.write('\n'.join(class_names) + '\n')
    with tf.io.gfile.GFile(os.path.join(out_uri, report.REPORT_FILE), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def recorded_answers(model_run_uri: Optional[str]) -> Dict[bytes, np.ndarray]:
    """The Trainer's answers on every eval photo by path (models/eval_answers.py), {} when
    it recorded none (or no ModelRun is given)."""
    every = eval_answers.load_every_answer(model_run_uri) if model_run_uri else None
    if every is None:
        return {}
    return dict(zip(every[eval_answers.PATH_FIELD].tolist(),
                    np.asarray(every[eval_answers.PROBABILITIES_FIELD])))


@contextlib.contextmanager
def _timed(seconds: Dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] += time.perf_counter() - start


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else 'no message'


def parse_variants(text: str) -> List[str]:
    """'float16,int8' -> ['float16', 'int8'] (the component's parameter)."""
    return [part.strip() for part in text.split(',') if part.strip()]

