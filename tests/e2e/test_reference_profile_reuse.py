"""ReferenceProfile on the shared real run (tests/conftest.py: small_run): the profile it
builds from DataQuality's frozen features and the Trainer's answers on every eval photo is
the one the exported model computes, and it falls back to the model whenever those numbers
are not the model's (components/reference_profile/reuse.py)."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
from tfx.utils import path_utils

from components import examples_io
from components.reference_profile import component
from components.reference_profile import reuse
from models import eval_answers
from models import features
from models import frozen_features
from models import history as training_history
from models import profile
from pipeline import nodes
from runlog import progress

pytestmark = pytest.mark.e2e

# The frozen base runs in TFLite for DataQuality's features and in TensorFlow inside the
# exported model: about 1e-4 apart. On the profile's projection (rounded to 5 decimals)
# the embeddings stay within this share of their own size, the answers within this.
EMBEDDING_RELATIVE_TOLERANCE = 1e-3
PROBABILITY_TOLERANCE = 1e-3


class Inputs:
    """What the run's ReferenceProfile read, and its sample drawn again under tmp."""

    def __init__(self, run, sample_uri: str):
        self.examples = run.output(nodes.EXAMPLE_GEN, 'examples').uri
        self.model_dir = path_utils.serving_model_path(run.output(nodes.TRAINER, 'model').uri)
        self.model_run = run.output(nodes.TRAINER, 'model_run').uri
        self.frozen_features = run.output(nodes.DATA_QUALITY, 'features').uri
        self.class_names = examples_io.read_class_names(self.examples)
        self.sample = sample_uri
        component.write_sample(self.examples, sample_uri, profile.REFERENCE_IMAGES)

    def build(self, frozen_features_uri, model_run_uri):
        return component.build_profile(self.sample, self.model_dir, self.class_names,
                                       embed_train_images=True,
                                       frozen_features_uri=frozen_features_uri,
                                       model_run_uri=model_run_uri)


@pytest.fixture(scope='module')
def inputs(small_run, tmp_path_factory):
    _, run = small_run
    return Inputs(run, str(tmp_path_factory.mktemp('profile-sample')))


@pytest.fixture(scope='module')
def computed(inputs):
    """The profile through the model (no frozen features given)."""
    return inputs.build(None, inputs.model_run)


def assert_same_profile(found, expected):
    """Row by row: the same photos and image statistics; the same predicted classes,
    confidences and projected embeddings up to the tolerances."""
    assert found['projection'] == expected['projection']
    assert len(found['rows']) == len(expected['rows'])
    numbers = (profile.CONFIDENCE, profile.EMBEDDING)
    for row, want in zip(found['rows'], expected['rows']):
        assert {k: v for k, v in row.items() if k not in numbers} == {
            k: v for k, v in want.items() if k not in numbers}
        assert (profile.CONFIDENCE in row) == (profile.CONFIDENCE in want)
        if profile.CONFIDENCE in want:
            assert row[profile.CONFIDENCE] == pytest.approx(want[profile.CONFIDENCE],
                                                            abs=PROBABILITY_TOLERANCE)
        embedding, wanted = np.asarray(row[profile.EMBEDDING]), np.asarray(want[profile.EMBEDDING])
        assert np.linalg.norm(embedding - wanted) <= (
            EMBEDDING_RELATIVE_TOLERANCE * np.linalg.norm(wanted)), row


def test_the_pipeline_profile_came_from_the_earlier_stages(small_run):
    _, run = small_run
    found = profile.load(os.path.join(run.output(nodes.REFERENCE_PROFILE,
                                                 'reference_profile').uri, profile.PROFILE_FILE))
    assert found[profile.EMBEDDINGS_FROM] == profile.FROM_FROZEN_FEATURES


def way_line(caplog) -> str:
    """The one line saying which way the profile was built: in the run's log (absl), not on
    the console (the progress logger)."""
    lines = [r for r in caplog.records if r.getMessage().startswith('reference profile:')]
    assert len(lines) == 1 and lines[0].name != progress.LOGGER_NAME, lines
    return lines[0].getMessage()


def test_reused_profile_equals_the_computed_one(inputs, computed, caplog):
    with caplog.at_level(logging.INFO, logger='absl'):     # the run's log
        reused = inputs.build(inputs.frozen_features, inputs.model_run)
    assert computed[profile.EMBEDDINGS_FROM] == profile.FROM_MODEL
    assert reused[profile.EMBEDDINGS_FROM] == profile.FROM_FROZEN_FEATURES
    rows = reused['rows']
    assert {r[profile.SPLIT] for r in rows} == {features.TRAIN_SPLIT, features.EVAL_SPLIT}
    assert all(profile.EMBEDDING in r for r in rows)
    assert_same_profile(reused, computed)
    line = way_line(caplog)
    assert 'no model pass' in line and f'{len(rows)} sampled photos' in line


def test_the_trainer_recorded_every_eval_photo_once(inputs):
    every = eval_answers.load_every_answer(inputs.model_run)
    eval_paths = [p['path'].encode() for p in frozen_features.read_photos(
        inputs.frozen_features, features.EVAL_SPLIT)]
    assert sorted(every[eval_answers.PATH_FIELD].tolist()) == sorted(eval_paths)
    probabilities = np.asarray(every[eval_answers.PROBABILITIES_FIELD])
    assert probabilities.shape == (len(eval_paths), len(inputs.class_names))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The JSON the run report and the InfraValidator read is unchanged.
    assert eval_answers.EVERY_ANSWER not in eval_answers.load(inputs.model_run)


def copy_with(uri: str, target, file_name: str, change) -> str:
    """A copy of an artifact folder whose JSON file_name is changed by change(dict)."""
    shutil.copytree(uri, target)
    path = os.path.join(target, file_name)
    with open(path, encoding='utf-8') as f:
        content = json.load(f)
    change(content)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(content, f)
    return str(target)


def test_features_of_another_image_size_fall_back_to_the_model(inputs, computed, tmp_path,
                                                               caplog):
    other = copy_with(inputs.frozen_features, tmp_path / 'features', frozen_features.META_FILE,
                      lambda meta: meta.update(image_size=[224, 224]))
    with caplog.at_level(logging.INFO, logger='absl'):     # the run's log
        found = inputs.build(other, inputs.model_run)
    assert found[profile.EMBEDDINGS_FROM] == profile.FROM_MODEL
    line = way_line(caplog)
    assert 'the model answers' in line and 'image_size [224, 224]' in line
    assert_same_profile(found, computed)


@pytest.mark.parametrize('change, reason', [
    (lambda h: h.update(fine_tune_from_epoch=3), 'fine-tuned'),
    (lambda h: h['settings'].update(model_variant='cnn'), "'cnn', not the transfer model"),
    (lambda h: h['settings'].update(weights=None), 'random weights'),
    (lambda h: h['settings'].update(weights='imagenet'), "weights"),
])
def test_a_model_that_is_not_the_features_falls_back(inputs, tmp_path, change, reason):
    assert reuse.why_not(inputs.frozen_features, inputs.model_run) is None
    other = copy_with(inputs.model_run, tmp_path / 'model_run', training_history.HISTORY_FILE,
                      change)
    assert reason in reuse.why_not(inputs.frozen_features, other)
    assert 'DataQuality did not run' in reuse.why_not(None, inputs.model_run)


def test_answers_missing_for_a_sampled_photo_fall_back(inputs, tmp_path):
    other = tmp_path / 'model_run'
    shutil.copytree(inputs.model_run, other)
    every = np.array(eval_answers.load_every_answer(inputs.model_run))
    np.save(other / eval_answers.PROBABILITIES_FILE, every[1:])
    paths = {split: [photo.path for photo in component.read_sample(inputs.sample, split)]
             for split in component.SPLITS}
    assert every[0][eval_answers.PATH_FIELD].decode() in paths[features.EVAL_SPLIT]
    found, why = reuse.earlier_outputs(paths, inputs.frozen_features, str(other), str(tmp_path))
    assert found is None and 'the Trainer\'s eval answers lack 1 sampled photos' in why
    os.remove(other / eval_answers.PROBABILITIES_FILE)
    found, why = reuse.earlier_outputs(paths, inputs.frozen_features, str(other), str(tmp_path))
    assert found is None and eval_answers.PROBABILITIES_FILE in why
