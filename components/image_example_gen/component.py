"""ImageExampleGen: a FileBasedExampleGen that reads folders of images."""

import json
from typing import Mapping, Optional, Sequence

from tfx.components.example_gen import component as example_gen_component
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel
from tfx.types import standard_artifacts

from components.image_example_gen import driver
from components.image_example_gen import executor
from components.image_example_gen import records
from components.image_example_gen import spec
from models import features

DEFAULT_HASH_BUCKETS = {features.TRAIN_SPLIT: 4, features.EVAL_SPLIT: 1}


class ImageExampleGen(example_gen_component.FileBasedExampleGen):
    """Reads `<class>/` folders (or `train/` + `validation/` holding them), at any depth.

    Output: `examples` (tf.train.Example TFRecords per split) with `labels.txt`
    and `image_report.json` beside the splits.
    """

    SPEC_CLASS = spec.ImageExampleGenSpec
    # Fingerprints every file under the root, so a changed nested photo re-runs it.
    DRIVER_CLASS = driver.Driver
    # BeamExecutorSpec, so pipeline-level beam_pipeline_args reach this executor.
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, labels: Sequence[str], *, presplit: bool,
                 hash_buckets: Optional[Mapping[str, int]] = None,
                 max_bad_fraction: float = 0.05,
                 max_pixels: int = records.DEFAULT_MAX_PIXELS):
        """Builds the component; bad arguments fail here, not at run time.

        Args:
          input_base: the data root.
          labels: class folder names, sorted; the index is the label.
          presplit: the root holds train/ and validation/ folders (validation
            becomes the eval split); otherwise each class is split by the
            hash of its images' bytes (stratified; identical images always
            share a split).
          hash_buckets: split name -> share, for the hash split
            (default train 4 : eval 1, i.e. 20% of each class to eval).
          max_bad_fraction: fail the run when more image files than this share
            cannot be decoded.
          max_pixels: images larger than this are reported as bad.

        Raises:
          ValueError: on an invalid argument.
        """
        labels = list(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f'labels must be at least two distinct names, got {labels}')
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f'max_bad_fraction must be in [0, 1], got {max_bad_fraction}')
        if max_pixels <= 0:
            raise ValueError(f'max_pixels must be positive, got {max_pixels}')
        if presplit:
            if hash_buckets:
                raise ValueError('hash_buckets applies only when the data is not pre-split')
            # The executor reads each split folder at any depth; the pattern's
            # first part names the folder.
            input_config = example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name=features.TRAIN_SPLIT,
                                            pattern=f'{features.TRAIN_DIR}/*'),
                example_gen_pb2.Input.Split(name=features.EVAL_SPLIT,
                                            pattern=f'{features.VALIDATION_DIR}/*'),
            ])
            output_config = example_gen_pb2.Output()
        else:
            buckets = dict(hash_buckets or DEFAULT_HASH_BUCKETS)
            if set(buckets) != {features.TRAIN_SPLIT, features.EVAL_SPLIT} or min(
                    buckets.values()) < 1:
                raise ValueError(
                    f'hash_buckets needs positive {features.TRAIN_SPLIT!r} and '
                    f'{features.EVAL_SPLIT!r} entries, got {buckets}')
            input_config = example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name='single_split', pattern='*')])
            # The buckets give the split names and shares; the executor splits
            # per class by content hash (see split.py), not TFX's record hash.
            output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=count)
                        for name, count in buckets.items()]))
        component_spec = spec.ImageExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            labels=json.dumps(labels),
            max_bad_fraction=float(max_bad_fraction),
            max_pixels=int(max_pixels),
            examples=channel.Channel(type=standard_artifacts.Examples))
        # FileBasedExampleGen.__init__ builds the stock spec; build ours instead.
        base_beam_component.BaseBeamComponent.__init__(self, spec=component_spec)
