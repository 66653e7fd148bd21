"""Fixtures of the serving tests: the exported models and test images.

`exported_models` is the one place that provides the image models every
serving test uses: version 1 is the model the pipeline pushed (the shared
`small_run`), version 2 a second export made with the project's own trainer
code (same Transform graph, another head). The regression model is a stand-in
(our classifier has no regress signature).
"""

import dataclasses
import pathlib
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf

from models import features
from tests import data
from tests.serving import server_process
from tests.serving import standin_model

VALIDATION = data.CATS_VS_DOGS / 'validation'


@dataclasses.dataclass(frozen=True)
class ExportedModels:
    """SavedModel directories (not yet under a base path) and expectations."""
    image_v1: str
    image_v2: str
    regression: str
    # image path -> probabilities the model gives it, per export.
    expected_v1: Dict[str, np.ndarray]
    expected_v2: Dict[str, np.ndarray]

    def expected(self, version: int) -> Dict[str, np.ndarray]:
        return {1: self.expected_v1, 2: self.expected_v2}[version]


@pytest.fixture(scope='session')
def image_paths() -> List[str]:
    """Three cats then three dogs from the validation photos (read in place)."""
    paths = []
    for label in features.CLASS_NAMES:
        files = sorted((VALIDATION / label).glob('*.jpg'))[:3]
        assert len(files) == 3, f'missing photos under {VALIDATION / label}'
        paths.extend(str(path) for path in files)
    return paths


@pytest.fixture(scope='session')
def image_bytes(image_paths) -> Dict[str, bytes]:
    return {path: pathlib.Path(path).read_bytes() for path in image_paths}


def expected_probabilities(export_dir: str, image_bytes: Dict[str, bytes]
                           ) -> Dict[str, np.ndarray]:
    """image path -> the probabilities the export's serving signature gives it."""
    serve = tf.saved_model.load(export_dir).signatures[features.SERVING_SIGNATURE]
    return {path: serve(**{features.SERVING_INPUT: tf.constant([data_])})[
        features.PROBABILITIES_OUTPUT].numpy()[0] for path, data_ in image_bytes.items()}


@pytest.fixture(scope='session')
def exported_models(tmp_path_factory, image_bytes, small_run) -> ExportedModels:
    """Two exports of the image model (different weights) and the regressor."""
    import tensorflow_transform as tft  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import export  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel

    pipeline_run, run = small_run
    root = tmp_path_factory.mktemp('exported')
    pushed = run.output('ImagePusher', 'pushed_model')
    image_v1 = mlmd_runs.custom_property(pushed, 'pushed_destination')
    image_v2 = str(root / 'image_v2')
    config = pipeline_run.config
    model = builders.build_transfer_model(config.image_size, len(config.class_names),
                                          weights=config.weights, seed=7)
    transform_output = tft.TFTransformOutput(run.output('Transform', 'transform_graph').uri)
    export.export_model(model, transform_output, config.class_names, image_v2)
    regression = str(root / 'regression')
    standin_model.export_regression_model(regression)
    return ExportedModels(image_v1, image_v2, regression,
                          expected_probabilities(image_v1, image_bytes),
                          expected_probabilities(image_v2, image_bytes))


@pytest.fixture(scope='session')
def tf_serving_models(tmp_path_factory) -> pathlib.Path:
    """TF Serving's test models, generated (tests/serving/tf_serving_models.py):
    <dir>/<name>/<version>/. A process of its own (it sets up virtual CPUs)."""
    out = tmp_path_factory.mktemp('tf_serving_models')
    result = subprocess.run(
        [sys.executable, '-m', 'tests.serving.tf_serving_models', str(out)],
        cwd=str(server_process.PROJECT_ROOT), env=server_process.subprocess_env(),
        capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return out
