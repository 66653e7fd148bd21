"""ReferenceProfile's sample: the smallest content hashes of each split, picked by Beam."""

import hashlib
import os

import apache_beam as beam
import tensorflow as tf

from components import examples_io
from components.reference_profile import component
from models import features


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
    with beam.Pipeline() as pipeline:
        _ = pipeline | component.SampleToFiles(  # pylint: disable=no-value-for-parameter
            examples_uri, sample_uri, 5)
    for split, images in splits.items():
        expected = sorted(images, key=lambda image: hashlib.sha256(image[0]).hexdigest())[:5]
        assert component.read_sample(sample_uri, split) == expected, split
