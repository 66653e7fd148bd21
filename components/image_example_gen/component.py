"""ImageExampleGen: a FileBasedExampleGen that reads folders of images."""

import json
from typing import Sequence

from tfx.components.example_gen import component as example_gen_component
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel
from tfx.types import standard_artifacts

from components.image_example_gen import driver
from components.image_example_gen import executor
from components.image_example_gen import spec
from models import features

_BUCKETS = 1000              # resolution of the split shares in the output config


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

    def __init__(self, input_base: str, class_names: Sequence[str], *, presplit: bool,
                 test_folder: bool = False, eval_fraction: float = features.EVAL_FRACTION,
                 test_fraction: float = 0.0,
                 max_bad_fraction: float = features.MAX_BAD_FRACTION,
                 max_pixels: int = features.MAX_PIXELS,
                 max_file_bytes: int = features.MAX_FILE_BYTES,
                 symlinks: str = features.SYMLINKS,
                 stop_on_conflicting_labels: bool = features.STOP_ON_CONFLICTING_LABELS):
        """Builds the component; bad arguments fail here, not at run time.

        Args:
          input_base: the data root.
          class_names: class folder names, sorted; the index is the label.
          presplit: the root holds train/ and validation/ folders (validation
            becomes the eval split); otherwise each class is split by the
            hash of its images' bytes (stratified; identical images always
            share a split).
          test_folder: a pre-split root also holds test/, the held-out test split.
          eval_fraction: the share of each class sent to eval by the hash split.
          test_fraction: the share of each class held out as the test split by
            the hash split (0: none).
          max_bad_fraction: fail the run when more image files than this share
            cannot be decoded.
          max_pixels: images larger than this are reported as bad.
          max_file_bytes: files larger than this are reported as bad, never read.
          symlinks: which symbolic links under the root are followed: 'follow'
            (all; a link to a folder that holds it is not), 'inside' (those whose
            target is inside the root) or 'none'; the others are listed as ignored.
          stop_on_conflicting_labels: fail the run when the same image bytes are
            filed under two classes (otherwise a warning; trained under each).

        Raises:
          ValueError: on an invalid argument.
        """
        class_names = features.class_names(class_names)
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f'max_bad_fraction must be in [0, 1], got {max_bad_fraction}')
        if max_pixels <= 0:
            raise ValueError(f'max_pixels must be positive, got {max_pixels}')
        if max_file_bytes <= 0:
            raise ValueError(f'max_file_bytes must be positive, got {max_file_bytes}')
        if symlinks not in features.SYMLINK_POLICIES:
            raise ValueError(f'symlinks must be one of {features.SYMLINK_POLICIES}, '
                             f'got {symlinks!r}')
        if presplit:
            if test_fraction:
                raise ValueError('test_fraction applies only when the data is not pre-split '
                                 '(a pre-split root holds its test split in test/)')
            # The executor reads each split folder at any depth; the pattern's
            # first part names the folder.
            folders = [(features.TRAIN_SPLIT, features.TRAIN_DIR),
                       (features.EVAL_SPLIT, features.VALIDATION_DIR)]
            if test_folder:
                folders.append((features.TEST_SPLIT, features.TEST_DIR))
            input_config = example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name=name, pattern=f'{folder}/*')
                for name, folder in folders])
            output_config = example_gen_pb2.Output()
        else:
            if test_folder:
                raise ValueError('test_folder applies only to a pre-split root')
            if not 0.0 < eval_fraction < 1.0 or not 0.0 <= test_fraction < 1.0 or (
                    eval_fraction + test_fraction >= 1.0):
                raise ValueError(
                    'eval_fraction must be in (0, 1), test_fraction in [0, 1) and their sum '
                    f'below 1, got {eval_fraction} and {test_fraction}')
            shares = {features.TRAIN_SPLIT: 1.0 - eval_fraction - test_fraction,
                      features.EVAL_SPLIT: eval_fraction}
            if test_fraction:
                shares[features.TEST_SPLIT] = test_fraction
            input_config = example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name='single_split', pattern='*')])
            # The buckets give the split names and shares (in thousandths); the
            # executor splits per class by content hash (see split.py), not by
            # TFX's hash of the record.
            output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(
                    name=name, hash_buckets=max(1, round(share * _BUCKETS)))
                        for name, share in shares.items()]))
        component_spec = spec.ImageExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            class_names=json.dumps(class_names),
            max_bad_fraction=float(max_bad_fraction),
            max_pixels=int(max_pixels),
            max_file_bytes=int(max_file_bytes),
            symlinks=symlinks,
            stop_on_conflicting_labels=int(bool(stop_on_conflicting_labels)),
            examples=channel.Channel(type=standard_artifacts.Examples))
        # FileBasedExampleGen.__init__ builds the stock spec; build ours instead.
        base_beam_component.BaseBeamComponent.__init__(self, spec=component_spec)
