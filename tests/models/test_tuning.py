"""The Tuner's pure parts: the settings file, the search space, the fold, the search on
synthetic features (no photos, no base)."""

import dataclasses
import json
import tempfile

import keras_tuner
import numpy as np
import pytest

from models import hyperparameters
from models import trainer_settings
from models import tuning

SETTINGS = trainer_settings.TrainerSettings(
    class_names=['cats', 'dogs'], image_size=[160, 160], model_variant='transfer', weights=None,
    epochs=10, batch_size=32, learning_rate=1e-3, dropout=0.2, fine_tune_from_layer=100,
    fine_tune_epochs=0, fine_tune_learning_rate=1e-5, fine_tune_patience=2, seed=42,
    augmentation='tutorial',
    label_smoothing=0.0, early_stopping_patience=0, augmented_views=3)


def synthetic_features(photos: int = 64, copies: int = 2, seed: int = 0) -> tuning.TrainFeatures:
    """Two classes of noisy pooled features, augmented copies near each photo."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, photos)
    centers = rng.normal(size=(2, 1280)).astype(np.float32)
    photo = (centers[labels] + rng.normal(scale=4.0, size=(photos, 1280))).astype(np.float32)
    augmented = (photo[:, None, :] + rng.normal(scale=1.0, size=(photos, copies, 1280))
                 ).astype(np.float32)
    return tuning.TrainFeatures(photo, augmented, labels, True, {})


def search(data: tuning.TrainFeatures, settings=SETTINGS, trials: int = 3):
    """A HeadTuner's search as tuner_fn sets it up (2 folds: quick); returns the tuner."""
    tuner = tuning.HeadTuner(
        data, settings, hyperparameters.SearchSettings(trials=trials, folds=2),
        oracle=tuning.DefaultsFirstOracle(
            objective=keras_tuner.Objective(hyperparameters.OBJECTIVE, 'min'),
            max_trials=trials, seed=settings.seed, hyperparameters=tuning.space(settings)),
        directory=tempfile.mkdtemp(), project_name='head', overwrite=True)
    tuner.search(verbose=0)
    return tuner


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in rows]


def test_the_search_is_reproducible_for_a_fixed_seed_starts_with_the_defaults_keeps_the_best():
    data = synthetic_features()
    first, second = search(data, trials=2), search(data, trials=2)
    best = json.dumps(first.get_best_hyperparameters()[0].get_config())
    assert best == json.dumps(second.get_best_hyperparameters()[0].get_config())
    rows = tuning.trial_rows(first)
    assert without_seconds(rows) == without_seconds(tuning.trial_rows(second))
    assert len(rows) == 2 and sum(row['best'] for row in rows) == 1
    best = next(row for row in rows if row['best'])
    assert best['val_loss'] == min(row['val_loss'] for row in rows)
    assert rows[0]['values'] == {name: getattr(SETTINGS, name)
                                 for name in hyperparameters.SPACE}
    # Another seed draws other trials after the defaults.
    other = tuning.trial_rows(search(data, dataclasses.replace(SETTINGS, seed=7), trials=2))
    assert [r['values'] for r in other[1:]] != [r['values'] for r in rows[1:]]


def test_the_pipelines_own_values_are_always_candidates():
    odd = dataclasses.replace(SETTINGS, learning_rate=5e-4, epochs=7, augmented_views=4)
    space = tuning.space(odd)
    assert space.values == {name: getattr(odd, name) for name in hyperparameters.SPACE}
    assert 5e-4 in tuning.candidates(odd, 'learning_rate')
    # views 4 with the photo as a view: 3 augmented copies at most.
    assert tuning.copies_needed(odd, tuning.candidates(odd, 'augmented_views'), True) == 3
    assert tuning.copies_needed(odd, tuning.candidates(odd, 'augmented_views'), False) == 4
    none = dataclasses.replace(odd, augmentation='none')
    assert tuning.copies_needed(none, tuning.candidates(none, 'augmented_views'), True) == 0


def test_a_trial_needing_more_copies_than_computed_is_refused():
    data = synthetic_features(copies=1)
    rows = np.arange(len(data.labels))
    with pytest.raises(ValueError, match='need 2 augmented copies'):
        tuning.fit(data, rows, SETTINGS)


def test_folds_validate_each_photo_once_per_class_by_a_head_that_never_saw_it():
    labels = np.array([0] * 60 + [1] * 40)
    splits = tuning.folds(labels, 5, seed=3)
    assert len(splits) == 5
    for fit_rows, val_rows in splits:
        assert not set(fit_rows) & set(val_rows)
        assert sorted([*fit_rows, *val_rows]) == list(range(100))
        assert np.bincount(labels[val_rows]).tolist() == [12, 8]
    assert sorted(row for _, val_rows in splits for row in val_rows) == list(range(100))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, tuning.folds(labels, 5, 3)))
    # A class too small for every fold: folds of all photos, still each validated once.
    few = tuning.folds(np.array([0] * 10 + [1] * 3), 5, seed=3)
    assert sorted(row for _, val_rows in few for row in val_rows) == list(range(13))


def test_the_search_space_names_settings_the_trainer_takes():
    assert set(hyperparameters.SPACE) == set(hyperparameters.TUNABLE)
    for name, candidates in hyperparameters.SPACE.items():
        assert hyperparameters.values({name: candidates[0]}) == {name: candidates[0]}
        assert name in {f.name for f in dataclasses.fields(trainer_settings.TrainerSettings)}


@pytest.mark.parametrize('config', [
    {'space': [], 'values': {'learning_rate': 0.003, 'epochs': 20}},   # KerasTuner's
    {'values': {'learning_rate': 0.003, 'epochs': 20}},
    {'learning_rate': 0.003, 'epochs': 20.0},                           # flat
])
def test_settings_files_in_keras_tuners_format_or_flat(tmp_path, config):
    (tmp_path / hyperparameters.FILE_NAME).write_text(json.dumps(config))
    expected = {'learning_rate': 0.003, 'epochs': 20}
    assert hyperparameters.read(str(tmp_path)) == expected
    assert hyperparameters.read(str(tmp_path / hyperparameters.FILE_NAME)) == expected
    assert isinstance(hyperparameters.read(str(tmp_path))['epochs'], int)


@pytest.mark.parametrize('text, message', [
    ('{"values": {"batch_size": 8}}', r"\['batch_size'\] are not settings"),
    ('{"dropout": 1.5}', r'dropout must be in \[0, 1\)'),
    ('{"epochs": 2.5}', 'epochs must be an integer'),
    ('{"learning_rate": "fast"}', 'learning_rate must be a number'),
    ('{"epochs": true}', 'epochs must be an integer'),
    ('[1, 2]', 'expected a JSON object'),
    ('not json', 'not JSON'),
])
def test_a_bad_settings_file_is_refused_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / 'mine.json'
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        hyperparameters.read(str(path))
    assert str(path) in str(error.value)


def test_a_missing_settings_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / hyperparameters.FILE_NAME)):
        hyperparameters.read(str(tmp_path))
