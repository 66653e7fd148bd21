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
from components.image_example_gen import settings as ingest_settings
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
                 test_folder: bool = False, **ingest):
        """Builds the component; bad arguments fail here, not at run time.

        Args:
          input_base: the data root.
          class_names: class folder names, sorted; the index is the label.
          presplit: the root holds train/ and validation/ folders (validation
            becomes the eval split); otherwise each class is split by the
            hash of its images' bytes (stratified; identical images always
            share a split), eval_fraction to eval and test_fraction to test.
          test_folder: a pre-split root also holds test/, the held-out test split.
          **ingest: settings.Ingest fields by name (eval_fraction, max_bad_fraction,
            symlinks, ...); the others keep their defaults.

        Raises:
          ValueError: on an invalid argument (naming it).
        """
        class_names = features.class_names(class_names)
        settings = ingest_settings.Ingest(**ingest)
        settings.check_layout(presplit=presplit, test_folder=test_folder)
        eval_fraction, test_fraction = settings.eval_fraction, settings.test_fraction
        if presplit:
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
            max_bad_fraction=settings.max_bad_fraction,
            max_pixels=settings.max_pixels,
            max_file_bytes=settings.max_file_bytes,
            symlinks=settings.symlinks,
            stop_on_conflicting_labels=int(settings.stop_on_conflicting_labels),
            examples=channel.Channel(type=standard_artifacts.Examples))
        # FileBasedExampleGen.__init__ builds the stock spec; build ours instead.
        base_beam_component.BaseBeamComponent.__init__(self, spec=component_spec)
