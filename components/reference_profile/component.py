"""ReferenceProfile: the profile a served model's traffic is later compared with.

For a sample of the train and eval images (at most `max_images` per split, the
ones with the smallest sha256, so the same sample on every run), one row of
image properties each (models/profile.py). Through the trained model: the eval
images' answers and embeddings, and with `embed_train_images` (set when the
embedding does not depend on training, e.g. a frozen base's pooled features)
the train images' embeddings too, so the monitor compares traffic with up to
twice as many images; never the train images' answers (the model learnt them:
too confident). Embeddings are stored on a fixed random projection
(models/profile.py: random_projection). When the model's embedding is the frozen
features DataQuality stored (the transfer model's frozen base, with their weights and
input size), the answers and embeddings come from those features and the Trainer's
answers on every eval photo, and the model does not run (reuse.py says when; one
line in the run's log, not the console, says which way and why; the profile's `embeddings_from` records it).
The Pusher copies the profile into the pushed version's assets.extra/, where
`python -m monitoring.monitor` finds it.

The sample is picked by Beam (`Top.Smallest` per split: each worker keeps at
most `max_images` records), so the splits are never read in one process, on a
distributed runner (Dataflow). When Beam would run here anyway (its DirectRunner),
each split is instead read once in this process, keeping the `max_images` records
with the smallest sha256 seen so far (heapq.nsmallest): the same sample, with at most
that many records held, where the DirectRunner held 0.15-0.2 GiB more at its peak for
3,000 photos and took 1.3 s more (docs/benchmarks.md, issue 40). Only the sample goes
through the model here.
"""

import datetime
import heapq
import os
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from absl import logging
import numpy as np
from apache_beam.options import pipeline_options
from tfx.dsl.component.experimental.annotations import BeamComponentParameter
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import artifacts
from components import examples_io
from components.reference_profile import reuse
from models import features
from models import profile

SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
# The sample, written under the output artifact while the component runs.
_SAMPLE_DIR = '.sample'
_SAMPLE_FILE = 'sample-00000-of-00001.gz'


def _sha(record: bytes) -> bytes:
    return examples_io.value(examples_io.parse(record), features.SHA256_KEY)


@beam.ptransform_fn
def SampleToFiles(pipeline: beam.Pipeline, examples_uri: str, sample_uri: str,  # pylint: disable=invalid-name
                  max_images: int):
    """Writes the max_images records with the smallest sha256 of each split under sample_uri,
    laid out as an Examples artifact (examples_io reads them back), on the pipeline's
    runner: what write_sample does in this process."""
    for split in SPLITS:
        _ = (pipeline
             | f'Read[{split}]' >> beam.io.ReadFromTFRecord(
                 examples_io.split_pattern(examples_uri, split))
             | f'BySha[{split}]' >> beam.Map(lambda record: (_sha(record), record))
             | f'Smallest[{split}]' >> beam.combiners.Top.Smallest(
                 max_images, key=lambda pair: pair[0])
             | f'Records[{split}]' >> beam.FlatMap(lambda pairs: [record for _, record in pairs])
             | f'Write[{split}]' >> beam.io.WriteToTFRecord(
                 os.path.join(examples_io.split_dir(sample_uri, split), 'sample'),
                 file_name_suffix='.gz', num_shards=1))


def runs_here(options: pipeline_options.PipelineOptions) -> bool:
    """Whether a pipeline with these options runs on Beam's DirectRunner (this machine,
    the default runner)."""
    runner = options.view_as(pipeline_options.StandardOptions).runner
    return runner is None or 'direct' in str(runner).lower()


def write_sample(examples_uri: str, sample_uri: str, max_images: int) -> None:
    """Writes the max_images records with the smallest sha256 of each split under
    sample_uri, laid out as an Examples artifact (examples_io reads them back).

    Raises:
      FileNotFoundError: a split has no files.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    for split in SPLITS:
        smallest = heapq.nsmallest(max_images, examples_io.iter_records(examples_uri, split),
                                   key=_sha)
        folder = examples_io.split_dir(sample_uri, split)
        tf.io.gfile.makedirs(folder)
        with tf.io.TFRecordWriter(os.path.join(folder, _SAMPLE_FILE), options='GZIP') as writer:
            for record in smallest:
                writer.write(record)


class Photo(NamedTuple):
    """One sampled example: its image bytes, label index and `path` (None: none stored)."""
    data: bytes
    label: int
    path: Optional[str]


def _path(example) -> Optional[str]:
    path = examples_io.value_or_none(example, features.PATH_KEY)
    return path.decode() if path is not None else None


def read_sample(sample_uri: str, split: str) -> List[Photo]:
    """The photos of a split's sample, by sha256."""
    rows = sorted(((examples_io.value(example, features.SHA256_KEY),
                    Photo(examples_io.value(example, features.IMAGE_KEY),
                          int(examples_io.value(example, features.LABEL_KEY)), _path(example)))
                   for example in examples_io.iter_examples(sample_uri, split)),
                  key=lambda row: (row[0], row[1].path or ''))
    return [photo for _, photo in rows]


def model_pass(model_dir: str, samples: Dict[str, Sequence[Photo]],
               embedded: Sequence[str]) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """(the eval photos' probabilities, {split: embeddings}) from the model's embedding
    signature over the sampled photos of the `embedded` splits (the eval split among them)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    signature = tf.saved_model.load(model_dir).signatures[features.EMBEDDING_SIGNATURE]
    outputs = {split: profile.model_outputs(signature, [photo.data for photo in samples[split]])
               for split in embedded}
    return (outputs[features.EVAL_SPLIT][0],
            {split: embeddings for split, (_, embeddings) in outputs.items()})


def build_profile(sample_uri: str, model_dir: str, class_names: List[str], *,
                  embed_train_images: bool, frozen_features_uri: Optional[str] = None,
                  model_run_uri: Optional[str] = None) -> Dict:
    """The reference profile of the sampled train and eval images under a model.

    The answers and embeddings come from DataQuality's frozen features (frozen_features_uri)
    and the Trainer's eval answers (model_run_uri) when they are the model's
    (reuse.earlier_outputs), else from the model's embedding signature.
    """
    samples = {split: read_sample(sample_uri, split) for split in SPLITS}
    rows = {split: [{profile.SPLIT: split, 'label': class_names[photo.label],
                     **profile.image_row(photo.data)}
                    for photo in sample] for split, sample in samples.items()}
    embedded = [split for split in SPLITS
                if split == features.EVAL_SPLIT or embed_train_images]
    with tempfile.TemporaryDirectory(prefix='reference-profile-') as local:
        reused, why = reuse.earlier_outputs(
            {split: [photo.path for photo in samples[split]] for split in embedded},
            frozen_features_uri, model_run_uri, local)
    sampled = sum(len(samples[split]) for split in embedded)
    if reused is not None:
        logging.info('reference profile: answers and embeddings of %d sampled photos '
                     'from the Trainer and DataQuality, no model pass (%s)', sampled, why)
        probabilities, embeddings = reused
    else:
        logging.info('reference profile: the model answers and embeds %d sampled '
                     'photos (%s)', sampled, why)
        probabilities, embeddings = model_pass(model_dir, samples, embedded)
    for row, answer in zip(rows[features.EVAL_SPLIT],
                           profile.prediction_fields(probabilities, class_names)):
        row.update(answer)
    width = embeddings[features.EVAL_SPLIT].shape[1]
    projection = profile.random_projection(width).round(5)
    for split, matrix in embeddings.items():
        for row, projected in zip(rows[split],
                                  profile.project(matrix, projection).round(5).tolist()):
            row[profile.EMBEDDING] = projected
    return {
        'class_names': class_names,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'model': model_dir,
        profile.EMBEDDINGS_FROM: (profile.FROM_FROZEN_FEATURES if reused is not None
                                  else profile.FROM_MODEL),
        'rows': [row for split in SPLITS for row in rows[split]],
        'projection': projection.tolist(),
    }


@component(use_beam=True)
def ReferenceProfile(  # pylint: disable=invalid-name
        examples: InputArtifact[standard_artifacts.Examples],
        model: InputArtifact[standard_artifacts.Model],
        reference_profile: OutputArtifact[artifacts.ReferenceProfile],
        model_run: InputArtifact[standard_artifacts.ModelRun] = None,
        frozen_features: InputArtifact[artifacts.FrozenFeatures] = None,
        max_images: Parameter[int] = profile.REFERENCE_IMAGES,
        embed_train_images: Parameter[bool] = False,
        beam_pipeline: BeamComponentParameter[beam.Pipeline] = None) -> None:
    """Writes reference_profile.json for the model and the data it learnt from.

    model_run: the Trainer's (its settings and answers on every eval photo); frozen_features:
    DataQuality's; with both, the model may not need to run (reuse.py)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    class_names = examples_io.read_class_names(examples.uri)
    sample_uri = os.path.join(reference_profile.uri, _SAMPLE_DIR)
    if runs_here(beam_pipeline.options):
        write_sample(examples.uri, sample_uri, max_images)
    else:
        with beam_pipeline as pipeline:
            _ = pipeline | 'Sample' >> SampleToFiles(  # pylint: disable=no-value-for-parameter
                examples.uri, sample_uri, max_images)
    result = build_profile(sample_uri, path_utils.serving_model_path(model.uri), class_names,
                           embed_train_images=embed_train_images,
                           frozen_features_uri=frozen_features.uri if frozen_features else None,
                           model_run_uri=model_run.uri if model_run else None)
    tf.io.gfile.rmtree(sample_uri)
    profile.save(result, os.path.join(reference_profile.uri, profile.PROFILE_FILE))
