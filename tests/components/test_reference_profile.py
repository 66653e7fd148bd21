"""ReferenceProfile: its sample (the smallest content hashes of each split) and
what it profiles (answers on eval images, embeddings on train images only when asked)."""

import hashlib
import os

import apache_beam as beam
from apache_beam.options import pipeline_options
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from components import examples_io
from components.reference_profile import component
from models import features
from models import profile
from tests import data


def write_split(examples_uri: str, split: str, images, shards: int = 2) -> None:
    """Gzipped TFRecords of Examples (image bytes, label, sha256), as ImageExampleGen lays them out."""
    folder = examples_io.split_dir(examples_uri, split)
    os.makedirs(folder)
    for shard in range(shards):
        path = os.path.join(folder, f'data_tfrecord-{shard:05d}-of-{shards:05d}.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for data, label in images[shard::shards]:
                example = tf.train.Example(features=tf.train.Features(feature={
                    features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                    features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    features.SHA256_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[hashlib.sha256(data).hexdigest().encode()])),
                }))
                writer.write(example.SerializeToString())


def test_sample_is_the_smallest_hashes_of_each_split(tmp_path):
    examples_uri, sample_uri = str(tmp_path / 'examples'), str(tmp_path / 'sample')
    splits = {
        features.TRAIN_SPLIT: [(f'train image {i}'.encode(), i % 3) for i in range(40)],
        features.EVAL_SPLIT: [(f'eval image {i}'.encode(), i % 2) for i in range(3)],
    }
    for split, images in splits.items():
        write_split(examples_uri, split, images)
    # In this process (Beam's runner is this machine's) and as a Beam job (Dataflow's way).
    component.write_sample(examples_uri, sample_uri, 5)
    with beam.Pipeline() as pipeline:
        _ = pipeline | component.SampleToFiles(  # pylint: disable=no-value-for-parameter
            examples_uri, str(tmp_path / 'beam_sample'), 5)
    for split, images in splits.items():
        expected = sorted(images, key=lambda image: hashlib.sha256(image[0]).hexdigest())[:5]
        sample = component.read_sample(sample_uri, split)
        assert [(photo.data, photo.label) for photo in sample] == expected, split
        assert {photo.path for photo in sample} == {None}     # these examples carry none
        assert component.read_sample(str(tmp_path / 'beam_sample'), split) == sample, split


@pytest.mark.parametrize('args, here', [
    ([], True), (['--direct_running_mode=multi_threading'], True),
    (['--runner=DirectRunner'], True), (['--runner=DataflowRunner', '--project=p'], False)])
def test_the_sample_is_read_here_only_when_beam_runs_here(args, here):
    assert component.runs_here(pipeline_options.PipelineOptions(args)) is here


class _MeanColourModel(tf.Module):
    """A stand-in with the exported model's `embedding` signature: the embedding is the
    image's mean colour, the answer leans to class 1 with the red channel."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT)])
    def embed(self, image_bytes):
        def mean_colour(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.reduce_mean(tf.cast(image, tf.float32), axis=[0, 1]) / 255.0
        colours = tf.map_fn(mean_colour, image_bytes, fn_output_signature=tf.float32)
        red = colours[:, :1]
        return {features.EMBEDDING_OUTPUT: colours,
                features.PROBABILITIES_OUTPUT: tf.concat([1.0 - red, red], axis=1)}


@pytest.mark.parametrize('embed_train_images', [False, True])
def test_profile_answers_on_eval_embeddings_on_train_only_when_asked(tmp_path,
                                                                     embed_train_images):
    examples_uri, sample_uri = str(tmp_path / 'examples'), str(tmp_path / 'sample')
    colours = {features.TRAIN_SPLIT: [(200, 30, 30), (30, 30, 200)] * 3,
               features.EVAL_SPLIT: [(220, 40, 40), (40, 40, 220)] * 2}
    for split, split_colours in colours.items():
        write_split(examples_uri, split, [
            (data.encode(Image.new('RGB', (40 + i, 30), colour), 'PNG'), i % 2)
            for i, colour in enumerate(split_colours)])
    component.write_sample(examples_uri, sample_uri, 100)
    model = _MeanColourModel()
    model_dir = str(tmp_path / 'model')
    tf.saved_model.save(model, model_dir, signatures={features.EMBEDDING_SIGNATURE: model.embed})

    result = component.build_profile(sample_uri, model_dir, ['blue', 'red'],
                                     embed_train_images=embed_train_images)
    rows = result['rows']
    assert [r[profile.SPLIT] for r in rows] == ['train'] * 6 + ['eval'] * 4
    train = [r for r in rows if r[profile.SPLIT] == 'train']
    evaluation = [r for r in rows if r[profile.SPLIT] == 'eval']
    assert all(profile.PREDICTED not in r for r in train)
    assert sorted(r[profile.PREDICTED] for r in evaluation) == ['blue', 'blue', 'red', 'red']
    assert all(len(r[profile.EMBEDDING]) == profile.EMBEDDING_DIMENSIONS for r in evaluation)
    assert all((profile.EMBEDDING in r) == embed_train_images for r in train)
    projection = np.asarray(result['projection'])
    assert projection.shape == (3, profile.EMBEDDING_DIMENSIONS)
    # Stored embeddings are the model's, projected with the stored matrix.
    [first] = [r for r in evaluation if r['width'] == 40]
    expected = profile.project(np.asarray([[220, 40, 40]]) / 255.0, projection)[0]
    np.testing.assert_allclose(first[profile.EMBEDDING], expected, atol=2e-3)
