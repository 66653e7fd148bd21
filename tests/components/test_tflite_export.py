"""TFLiteExport: the shared small run's TFLite models, and a bad int8 model refused."""

import itertools
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tfx.utils import path_utils

from components.tflite_export import executor
from components.tflite_export import report
from models import eval_answers
from models import features
from models import preprocessing
from models import tflite_export
from reports import mlmd_runs
from tests import data
from tests.conftest import SMALL

EVAL_IMAGES = sum(SMALL['validation'].values())


def _model_dir(run) -> str:
    return path_utils.serving_model_path(run.output('Trainer', 'model').uri)


def test_the_run_writes_checked_float16_and_int8_models(small_run):
    _, run = small_run
    assert run.nodes['TFLiteExport'].state == 'COMPLETE'
    artifact = run.output('TFLiteExport', 'tflite')
    found = report.read_report(artifact.uri)
    assert list(found['variants']) == ['float16', 'int8']
    assert found['input']['shape'] == [None, 160, 160, 3]
    assert found['representative_images'] == sum(SMALL['train'].values())
    # The SavedModel's answers in the check: the Trainer's, no pass over the eval split.
    assert found['reference'] == {executor.REFERENCE_RECORDED: EVAL_IMAGES,
                                  executor.REFERENCE_RUN: 0}
    for variant, result in found['variants'].items():
        # Every eval image checked; the verdict follows the accuracy lost; the file is
        # where the verdict puts it.
        assert result['images'] == EVAL_IMAGES
        assert result['ready'] == (result['accuracy_drop'] <= found['max_accuracy_drop'])
        assert result['file'] == os.path.relpath(
            report.model_file(artifact.uri, variant, ready=result['ready']), artifact.uri)
        assert os.path.getsize(os.path.join(artifact.uri, result['file'])) == result['size_bytes']
    assert found['variants']['float16']['ready']
    assert found['variants']['float16']['agreement'] == 1.0
    # Where its time went, by phase (bench/tflite_export.py --phases prints them).
    seconds = found['seconds']
    assert set(seconds['convert']) == set(seconds['check']) == {'float16', 'int8'}
    assert {executor.SECONDS_LOAD, executor.SECONDS_CALIBRATION_PIXELS, executor.SECONDS_LOWERING,
            executor.SECONDS_CHECK, executor.SECONDS_EVAL_PIXELS, executor.SECONDS_REFERENCE,
            executor.SECONDS_WRITE} == set(seconds) - {'convert', 'check'}
    assert all(value >= 0 for value in [*seconds['convert'].values(), *seconds['check'].values()])
    ready = report.ready_models(artifact.uri)
    assert mlmd_runs.custom_property(artifact, report.READY_PROPERTY) == ','.join(ready)
    assert (open(os.path.join(artifact.uri, report.CLASS_NAMES_FILE)).read().split()
            == ['cats', 'dogs'])

    # A client decoding as documented gets the SavedModel's answers from the float16 model.
    photos = data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2)
    raw = tf.constant([p.read_bytes() for p in photos])
    served = tf.saved_model.load(_model_dir(run)).signatures[features.SERVING_SIGNATURE](
        **{features.SERVING_INPUT: raw})[features.PROBABILITIES_OUTPUT].numpy()
    with open(ready['float16'], 'rb') as f:
        runner = tflite_export.Runner(f.read(), threads=2)
    answers = runner.run(preprocessing.preprocess_images(raw, runner.input_shape[:2]).numpy())
    # float16 weights move a probability by a few hundredths at most, not the class.
    np.testing.assert_allclose(answers, served, atol=0.05)
    assert answers.argmax(axis=1).tolist() == served.argmax(axis=1).tolist()


def test_an_int8_model_calibrated_on_the_wrong_pixels_is_refused(small_run, tmp_path):
    """Calibrated on flat grey images, the int8 ranges miss what photos produce: the model
    loses far more than a point and is kept only under refused/."""
    _, run = small_run
    examples = run.output('ImageExampleGen', 'examples').uri
    out = str(tmp_path / 'tflite')
    grey = np.zeros((8, 160, 160, 3), np.float32)
    found = executor.export_tflite(_model_dir(run), examples, out, variants=['int8'],
                                   representative=lambda: grey)
    result = found['variants']['int8']
    assert not result['ready']
    assert result['accuracy_drop'] > 0.01
    assert 'points below the SavedModel' in result['reason']
    assert report.ready_models(out) == {}
    assert os.path.isfile(report.model_file(out, 'int8', ready=False))
    assert not os.path.exists(report.model_file(out, 'int8', ready=True))


def test_balanced_records_take_each_class_in_turn_from_the_start():
    records = iter([(b'c1', 0, b'p'), (b'c2', 0, b'p'), (b'c3', 0, b'p'), (b'd1', 1, b'p'),
                    (b'c4', 0, b'p'), (b'd2', 1, b'p'), (b'd3', 1, b'p')])
    assert executor.balanced_records(records, 4, 2) == [b'c1', b'd1', b'c2', b'd2']
    # A class with fewer images than its share gives what it has.
    assert executor.balanced_records(iter([(b'c1', 0, b''), (b'c2', 0, b''), (b'd1', 1, b'')]),
                                     6, 2) == [b'c1', b'd1', b'c2']
    assert [(labels.tolist(), paths) for _, labels, paths in executor.batches(
        iter([(b'x', i % 2, b'p%d' % i) for i in range(7)]), 5, 2)] == [
            ([0, 1], [b'p0', b'p1']), ([0, 1], [b'p2', b'p3']), ([0], [b'p4'])]


def test_the_trainers_answers_stand_for_the_savedmodels_where_it_recorded_them(small_run,
                                                                                tmp_path):
    """With the Trainer's ModelRun the SavedModel does not run over the eval images: its
    answers are the Trainer's, by path; a batch with a photo the Trainer has no answer
    for runs the SavedModel. The check's figures are the same either way (the Trainer's
    answers are the exported model's within TFLite's rounding)."""
    _, run = small_run
    examples = run.output('ImageExampleGen', 'examples').uri
    model_run = run.output('Trainer', 'model_run').uri
    every = eval_answers.load_every_answer(model_run)
    first_batch = [path for _, _, path in itertools.islice(
        executor.labelled_records(examples, features.EVAL_SPLIT), executor.EVAL_BATCH)]
    partial = tmp_path / 'partial'
    partial.mkdir()
    np.save(partial / eval_answers.PROBABILITIES_FILE,
            every[~np.isin(every[eval_answers.PATH_FIELD], first_batch[:1])])
    found = {name: executor.export_tflite(_model_dir(run), examples, str(tmp_path / name),
                                          variants=['float16'], model_run_uri=uri)
             for name, uri in (('run', None), ('recorded', model_run),
                               ('partial', str(partial)))}
    recorded, ran = executor.REFERENCE_RECORDED, executor.REFERENCE_RUN
    assert found['run']['reference'] == {recorded: 0, ran: EVAL_IMAGES}
    assert found['recorded']['reference'] == {recorded: EVAL_IMAGES, ran: 0}
    assert found['partial']['reference'] == {recorded: EVAL_IMAGES - executor.EVAL_BATCH,
                                             ran: executor.EVAL_BATCH}
    expected = found['run']['variants']['float16']
    for name in ('recorded', 'partial'):
        got = found[name]['variants']['float16']
        for key in ('images', 'reference_accuracy', 'accuracy', 'agreement', 'ready'):
            assert got[key] == expected[key], (name, key)
        assert got['max_abs_difference'] == pytest.approx(expected['max_abs_difference'],
                                                          abs=1e-3)


def test_every_variant_converted_from_one_lowering_is_the_one_convert_makes(tmp_path):
    """The executor saves the function once (lowered) and converts each variant from that
    folder: the same answers, to the bit, and the same signature as convert() lowering it
    for each variant; the folder is gone afterwards."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation='relu'),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(stddev=20.0)),
        keras.layers.Softmax()])
    function = tflite_export.keras_function(model, (16, 16, 3))
    rng = np.random.default_rng(0)     # a colour of its own per image, and noise
    pixels = np.clip(rng.uniform(-0.7, 0.7, (6, 1, 1, 3)) + rng.uniform(-0.3, 0.3, (6, 16, 16, 3)),
                     -1, 1).astype(np.float32)
    calibration = lambda: (pixels[i:i + 1] for i in range(len(pixels)))  # noqa: E731
    with executor.lowered(function) as folder:
        assert os.path.isfile(os.path.join(folder, 'saved_model.pb'))
        shared = {variant: tflite_export.convert(folder, variant, representative=calibration)
                  for variant in tflite_export.VARIANTS}
    assert not os.path.exists(folder)
    for variant, content in shared.items():
        own = tflite_export.Runner(tflite_export.convert(
            function, variant, trackable=model, representative=calibration), threads=1)
        runner = tflite_export.Runner(content, threads=1)
        assert runner.signatures() == own.signatures()
        assert list(runner.signatures()) == [features.SERVING_SIGNATURE]
        np.testing.assert_array_equal(runner.run(pixels), own.run(pixels))
        assert np.ptp(runner.run(pixels)[:, 0]) > 0.05, variant   # answers move with the input
