"""A small real pipeline run shared by the end-to-end and serving tests
(LocalDagRunner, SQLite MLMD, Beam DirectRunner), on photos copied from ../shared."""

import dataclasses
import os
import pathlib
import random

import pytest

from pipeline import configs
from tests import data

# 30 + 30 eval photos: enough for the monitor's reference answers to tell a one-class
# stream from a mixed one (tests/monitoring/test_monitor.py).
SMALL = {'train': {'cats': 20, 'dogs': 20}, 'validation': {'cats': 30, 'dogs': 30}}


@dataclasses.dataclass
class PipelineFixture:
    config: configs.PipelineConfig
    metadata_path: str
    work_dir: pathlib.Path

    def run(self, **overrides):
        """Runs the pipeline (optionally with changed settings); returns the latest MLMD run."""
        import local_runner  # pylint: disable=import-outside-toplevel
        from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
        config = configs.replace(self.config, **overrides)
        local_runner.run(config, self.metadata_path)
        return mlmd_runs.latest_run(self.metadata_path, config.pipeline_name)


def make_run(work_dir: pathlib.Path, counts, **overrides) -> PipelineFixture:
    root = data.make_root(work_dir / 'data', counts)
    # The tutorial's 160 rather than the weights' 224: quicker, and what serving tests expect.
    settings = dict(epochs=3, batch_size=8, accuracy_threshold=0.6, weights=str(data.WEIGHTS),
                    warmup_images=3, image_size=(160, 160))
    settings.update(overrides)
    images = sum(sum(split.values()) for split in counts.values())
    config = configs.local(str(work_dir), str(root), presplit=True, images=images, **settings)
    return PipelineFixture(config, configs.metadata_path(str(work_dir)), work_dir)


@pytest.fixture(scope='session', autouse=True)
def frozen_base_cache(tmp_path_factory):
    """The frozen base converted to TFLite (models/tflite_base.py) is cached in the
    session's temporary folder, not in the user's ~/.cache (runs in child processes
    inherit it)."""
    from models import tflite_base  # pylint: disable=import-outside-toplevel
    before = os.environ.get(tflite_base.CACHE_ENV)
    os.environ[tflite_base.CACHE_ENV] = str(tmp_path_factory.mktemp('frozen-base'))
    yield
    if before is None:
        os.environ.pop(tflite_base.CACHE_ENV, None)
    else:
        os.environ[tflite_base.CACHE_ENV] = before


@pytest.fixture(scope='session')
def small_run(tmp_path_factory):
    """The whole pipeline, run once on SMALL (40 train / 60 eval photos); (PipelineFixture, MLMD run)."""
    pipeline_run = make_run(tmp_path_factory.mktemp('e2e'), SMALL)
    return pipeline_run, pipeline_run.run()


# 40 cats and 5 dogs in train: the DataGate stops the run on label balance.
IMBALANCED = {'train': {'cats': 40, 'dogs': 5}, 'validation': {'cats': 10, 'dogs': 10}}


@pytest.fixture(scope='session')
def stopped_run(tmp_path_factory):
    """A run the DataGate stopped (IMBALANCED), shared by the tests of the stop and of its
    report; (PipelineFixture, the DataValidationError's message, MLMD run). DataQuality
    is off: nobody looks at it here, and it would only add its features' cost."""
    from components.data_gate.component import DataValidationError  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    pipeline_run = make_run(tmp_path_factory.mktemp('stopped'), IMBALANCED, data_quality=False)
    with pytest.raises(DataValidationError) as err:
        pipeline_run.run()
    run = mlmd_runs.latest_run(pipeline_run.metadata_path, pipeline_run.config.pipeline_name)
    return pipeline_run, str(err.value), run


# TEST_ORDER_SEED=<any text> make test: the modules, and the tests in each, in a
# seeded random order (modules stay whole, so their shared fixtures are built once).
ORDER_SEED = 'TEST_ORDER_SEED'


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    seed = os.environ.get(ORDER_SEED)
    if not seed:
        return
    rng = random.Random(seed)
    modules = {}
    for item in items:
        modules.setdefault(item.nodeid.split('::')[0], []).append(item)
    groups = list(modules.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    items[:] = [item for group in groups for item in group]

