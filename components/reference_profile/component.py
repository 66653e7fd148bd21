"""ReferenceProfile: the profile a served model's traffic is later compared with.

For a sample of the train and eval images (at most `max_images` per split, the
ones with the smallest sha256, so the same sample on every run), one row of
image properties each (models/profile.py), the trained model's answers on the
eval images (the train images' answers would be too confident), and the
model's embeddings of all of them, reduced by PCA. The Pusher copies the
profile into the pushed version's assets.extra/, where `python -m
serving.monitor` finds it.
"""

import datetime
import heapq
import os
from typing import Dict, List, Tuple

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import artifacts
from components import examples_io
from models import features
from models import profile

DEFAULT_MAX_IMAGES = 1000


def sample_split(examples_uri: str, split: str, max_images: int) -> List[Tuple[bytes, int]]:
    """(image bytes, label) of the max_images images with the smallest sha256 of a split."""
    kept: List[Tuple[str, bytes, int]] = []   # a max-heap on sha256 via negated keys
    for example in examples_io.iter_examples(examples_uri, split):
        sha = examples_io.value(example, features.SHA256_KEY).decode()
        item = (_negated(sha), examples_io.value(example, features.IMAGE_KEY),
                int(examples_io.value(example, features.LABEL_KEY)))
        if len(kept) < max_images:
            heapq.heappush(kept, item)
        elif item[0] > kept[0][0]:
            heapq.heapreplace(kept, item)
    return [(data, label) for _, data, label in sorted(kept, reverse=True)]


def _negated(sha: str) -> str:
    """A key that orders hex digests in reverse (for a max-heap on heapq's min-heap)."""
    return sha.translate(str.maketrans('0123456789abcdef', 'fedcba9876543210'))


def build_profile(examples_uri: str, model_dir: str, class_names: List[str],
                  max_images: int) -> Dict:
    """The reference profile of the sampled train and eval images under a model."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    signature = tf.saved_model.load(model_dir).signatures[features.EMBEDDING_SIGNATURE]
    rows, embeddings = [], []
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        sample = sample_split(examples_uri, split, max_images)
        probabilities, split_embeddings = profile.model_outputs(
            signature, [data for data, _ in sample])
        answers = profile.prediction_fields(probabilities, class_names)
        for (data, label), answer in zip(sample, answers):
            row = {'split': split, 'label': class_names[label], **profile.image_row(data)}
            if split == features.EVAL_SPLIT:
                row.update(answer)
            rows.append(row)
        embeddings.append(split_embeddings)
    matrix = np.concatenate([e for e in embeddings if len(e)])
    pca = profile.fit_pca(matrix)
    return {
        'class_names': class_names,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'model': model_dir,
        'rows': rows,
        'embedding': {**pca, 'reduced': profile.reduce(matrix, pca).round(5).tolist()},
    }


@component
def ReferenceProfile(  # pylint: disable=invalid-name
        examples: InputArtifact[standard_artifacts.Examples],
        model: InputArtifact[standard_artifacts.Model],
        reference_profile: OutputArtifact[artifacts.ReferenceProfile],
        max_images: Parameter[int] = DEFAULT_MAX_IMAGES) -> None:
    """Writes reference_profile.json for the model and the data it learnt from."""
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    class_names = examples_io.read_class_names(examples.uri)
    result = build_profile(examples.uri, path_utils.serving_model_path(model.uri), class_names,
                           max_images)
    profile.save(result, os.path.join(reference_profile.uri, profile.PROFILE_FILE))
