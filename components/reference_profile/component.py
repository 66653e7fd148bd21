"""ReferenceProfile: the profile a served model's traffic is later compared with.

For a sample of the train and eval images (at most `max_images` per split, the
ones with the smallest sha256, so the same sample on every run), one row of
image properties each (models/profile.py). Through the trained model: the eval
images' answers and embeddings, and with `embed_train_images` (set when the
embedding does not depend on training, e.g. a frozen base's pooled features)
the train images' embeddings too, so the monitor compares traffic with up to
twice as many images; never the train images' answers (the model learnt them:
too confident). Embeddings are stored on a fixed random projection
(models/profile.py: random_projection).
The Pusher copies the profile into the pushed version's assets.extra/, where
`python -m monitoring.monitor` finds it.

The sample is picked by Beam (`Top.Smallest` per split: each worker keeps at
most `max_images` records), so the splits are never read in one process; only
the sample goes through the model here.
"""

import datetime
import os
from typing import Dict, List, Tuple

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import BeamComponentParameter
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import artifacts
from components import examples_io
from models import features
from models import profile

SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
# The sample, written by Beam under the output artifact while the component runs.
_SAMPLE_DIR = '.sample'


def _by_sha(record: bytes) -> Tuple[str, bytes]:
    example = examples_io.parse(record)
    return examples_io.value(example, features.SHA256_KEY).decode(), record


@beam.ptransform_fn
def SampleToFiles(pipeline: beam.Pipeline, examples_uri: str, sample_uri: str,  # pylint: disable=invalid-name
                  max_images: int):
    """Writes the max_images records with the smallest sha256 of each split under sample_uri,
    laid out as an Examples artifact (examples_io reads them back)."""
    for split in SPLITS:
        _ = (pipeline
             | f'Read[{split}]' >> beam.io.ReadFromTFRecord(
                 examples_io.split_pattern(examples_uri, split))
             | f'BySha[{split}]' >> beam.Map(_by_sha)
             | f'Smallest[{split}]' >> beam.combiners.Top.Smallest(
                 max_images, key=lambda pair: pair[0])
             | f'Records[{split}]' >> beam.FlatMap(lambda pairs: [record for _, record in pairs])
             | f'Write[{split}]' >> beam.io.WriteToTFRecord(
                 os.path.join(examples_io.split_dir(sample_uri, split), 'sample'),
                 file_name_suffix='.gz', num_shards=1))


def read_sample(sample_uri: str, split: str) -> List[Tuple[bytes, int]]:
    """(image bytes, label) of a split's sample, by sha256."""
    rows = sorted((examples_io.value(example, features.SHA256_KEY),
                   examples_io.value(example, features.IMAGE_KEY),
                   int(examples_io.value(example, features.LABEL_KEY)))
                  for example in examples_io.iter_examples(sample_uri, split))
    return [(data, label) for _, data, label in rows]


def build_profile(sample_uri: str, model_dir: str, class_names: List[str], *,
                  embed_train_images: bool) -> Dict:
    """The reference profile of the sampled train and eval images under a model."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    signature = tf.saved_model.load(model_dir).signatures[features.EMBEDDING_SIGNATURE]
    samples = {split: read_sample(sample_uri, split) for split in SPLITS}
    rows = {split: [{profile.SPLIT: split, 'label': class_names[label],
                     **profile.image_row(data)}
                    for data, label in sample] for split, sample in samples.items()}
    embedded = [split for split in SPLITS
                if split == features.EVAL_SPLIT or embed_train_images]
    outputs = {split: profile.model_outputs(signature, [data for data, _ in samples[split]])
               for split in embedded}
    probabilities, _ = outputs[features.EVAL_SPLIT]
    for row, answer in zip(rows[features.EVAL_SPLIT],
                           profile.prediction_fields(probabilities, class_names)):
        row.update(answer)
    width = outputs[features.EVAL_SPLIT][1].shape[1]
    projection = profile.random_projection(width).round(5)
    for split, (_, matrix) in outputs.items():
        for row, projected in zip(rows[split],
                                  profile.project(matrix, projection).round(5).tolist()):
            row[profile.EMBEDDING] = projected
    return {
        'class_names': class_names,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'model': model_dir,
        'rows': [row for split in SPLITS for row in rows[split]],
        'projection': projection.tolist(),
    }


@component(use_beam=True)
def ReferenceProfile(  # pylint: disable=invalid-name
        examples: InputArtifact[standard_artifacts.Examples],
        model: InputArtifact[standard_artifacts.Model],
        reference_profile: OutputArtifact[artifacts.ReferenceProfile],
        max_images: Parameter[int] = profile.REFERENCE_IMAGES,
        embed_train_images: Parameter[bool] = False,
        beam_pipeline: BeamComponentParameter[beam.Pipeline] = None) -> None:
    """Writes reference_profile.json for the model and the data it learnt from."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    class_names = examples_io.read_class_names(examples.uri)
    sample_uri = os.path.join(reference_profile.uri, _SAMPLE_DIR)
    with beam_pipeline as pipeline:
        _ = pipeline | 'Sample' >> SampleToFiles(  # pylint: disable=no-value-for-parameter
            examples.uri, sample_uri, max_images)
    result = build_profile(sample_uri, path_utils.serving_model_path(model.uri), class_names,
                           embed_train_images=embed_train_images)
    tf.io.gfile.rmtree(sample_uri)
    profile.save(result, os.path.join(reference_profile.uri, profile.PROFILE_FILE))
