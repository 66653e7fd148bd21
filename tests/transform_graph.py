"""Writes the pipeline's Transform graph without the pipeline (TFT on Beam, in process).

preprocessing_fn has no analyzers, so analysing an empty data set gives the
same graph Transform writes in a run.
"""

import os

import apache_beam as beam
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io

from models import preprocessing
from pipeline import configs


def write_transform_graph(out_dir: str, image_size=(160, 160)) -> tft.TFTransformOutput:
    schema = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    metadata = dataset_metadata.DatasetMetadata(schema)

    def preprocessing_fn(inputs):
        return preprocessing.preprocessing_fn(inputs, {'image_size': list(image_size)})

    with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(out_dir, 'tmp')):
        raw = p | 'NoExamples' >> beam.Create([], reshuffle=False)
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    # The raw schema, which TFX's Transform also writes beside the graph.
    metadata_io.write_metadata(metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(out_dir)
