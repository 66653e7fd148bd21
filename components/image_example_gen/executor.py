"""ImageExampleGen executor: image folders -> TFRecords of tf.train.Example.

The base executor does the splitting and writing; we supply the ptransform that
reads one split's files. Every input file also yields one manifest line (ok,
bad with its reason, or ignored), so no file is dropped silently; after the
Beam run the manifest becomes `image_report.json` and `labels.txt` beside the
Split-* folders, and the run fails if too many files are bad.

All file access goes through tf.io.gfile, so gs:// (and ram:// in tests) work.
"""

import json
import os
import posixpath
from typing import Any, Dict, Iterator, List, Sequence

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import records
from components.image_example_gen import spec
from components.image_example_gen import summary
from models import features

# Private exec property set by Do: input split pattern -> manifest file prefix.
_MANIFEST_PREFIXES = '_image_manifest_prefixes'
_MANIFEST_TAG = 'manifest'


def labels_from_exec_properties(exec_properties: Dict[str, Any]) -> List[str]:
    labels = json.loads(exec_properties[spec.LABELS_KEY])
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f'labels must be at least two distinct names, got {labels}')
    return labels


def _relative(path: str, root: str) -> str:
    return posixpath.relpath(path.replace(os.sep, '/'), root.replace(os.sep, '/').rstrip('/'))


class _ReadImageFn(beam.DoFn):
    """Reads one file; emits its Example (main output) and its manifest entry."""

    def __init__(self, input_base: str, labels: Sequence[str], max_pixels: int):
        super().__init__()
        self._input_base = input_base
        self._labels = list(labels)
        self._max_pixels = max_pixels

    def process(self, rel_path: str) -> Iterator[Any]:
        label = records.label_from_path(rel_path, self._labels)
        entry = {'path': rel_path, 'status': summary.OK, 'reason': None,
                 'label_name': self._labels[label] if label is not None else None}
        ext = posixpath.splitext(rel_path)[1].lower()
        if posixpath.basename(rel_path).startswith('.') or ext not in features.IMAGE_EXTENSIONS:
            entry.update(status=summary.IGNORED,
                         reason=f'not an image file name ({", ".join(features.IMAGE_EXTENSIONS)})')
            yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
            return
        if label is None:
            entry.update(status=summary.IGNORED, reason='not inside a class folder')
            yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
            return
        try:
            with tf.io.gfile.GFile(posixpath.join(self._input_base, rel_path), 'rb') as f:
                data = f.read()
            info = records.inspect_image(data, max_pixels=self._max_pixels)
        except records.BadImageError as e:
            entry.update(status=summary.BAD, reason=e.reason)
        except (OSError, tf.errors.OpError) as e:
            entry.update(status=summary.BAD, reason=f'cannot read file: {e}')
        if entry['status'] == summary.BAD:
            logging.warning('Bad image %s: %s', rel_path, entry['reason'])
            yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
            return
        entry.update(sha256=info.sha256, height=info.height, width=info.width,
                     channels=info.channels, format=info.format, bytes=len(data))
        yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
        yield records.make_example(data, rel_path, label, self._labels, info)


def list_files(input_base: str, split_pattern: str) -> List[str]:
    """Files (not folders) matching the split pattern, relative to input_base, sorted."""
    matches = tf.io.gfile.glob(posixpath.join(input_base, split_pattern))
    return sorted(_relative(p, input_base) for p in matches if not tf.io.gfile.isdir(p))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImageFolderToExample(  # pylint: disable=invalid-name
        pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
        split_pattern: str) -> beam.pvalue.PCollection:
    """Reads the image files of one input split into tf.train.Examples."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    labels = labels_from_exec_properties(exec_properties)
    rel_paths = list_files(input_base, split_pattern)
    logging.info('ImageExampleGen: %d files match %s', len(rel_paths), split_pattern)
    results = (
        pipeline
        | 'ListFiles' >> beam.Create(rel_paths)
        | 'Reshuffle' >> beam.Reshuffle()
        | 'ReadImage' >> beam.ParDo(_ReadImageFn(
            input_base, labels, exec_properties[spec.MAX_PIXELS_KEY])).with_outputs(
                _MANIFEST_TAG, main='examples'))
    _ = (results[_MANIFEST_TAG]
         | 'ManifestToJson' >> beam.Map(json.dumps, sort_keys=True)
         | 'WriteManifest' >> beam.io.WriteToText(
             exec_properties[_MANIFEST_PREFIXES][split_pattern], file_name_suffix='.jsonl'))
    return results['examples']


def _read_manifest(prefix: str) -> Iterator[Dict[str, Any]]:
    for path in sorted(tf.io.gfile.glob(prefix + '*.jsonl')):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                yield json.loads(line)


def _hash_split_name(sha256: str, output_config: example_gen_pb2.Output) -> str:
    """The split the base executor put an image in, when splitting by hash."""
    buckets, total = [], 0
    for split in output_config.split_config.splits:
        total += split.hash_buckets
        buckets.append(total)
    key = tf.train.Example()
    key.features.feature[features.SHA256_KEY].bytes_list.value.append(sha256.encode())
    index = base_example_gen_executor._PartitionFn(  # pylint: disable=protected-access
        key, len(buckets), buckets, output_config.split_config)
    return output_config.split_config.splits[index].name


def _write_text(path: str, text: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(text)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads image folders; writes examples, labels.txt and image_report.json."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImageFolderToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        labels = labels_from_exec_properties(exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        hash_split = bool(output_config.split_config.splits)
        manifest_dir = os.path.join(examples.uri, spec.MANIFEST_DIR)
        prefixes = {s.pattern: os.path.join(manifest_dir, s.name) for s in input_config.splits}
        super().Do(input_dict, output_dict,
                   {**exec_properties, _MANIFEST_PREFIXES: prefixes})

        entries = []
        for split in input_config.splits:
            for entry in _read_manifest(prefixes[split.pattern]):
                if entry['status'] == summary.OK:
                    entry['split'] = (_hash_split_name(entry['sha256'], output_config)
                                      if hash_split else split.name)
                entries.append(entry)
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        report = summary.summarize(
            entries, labels, split_names, hash_split=hash_split,
            max_bad_fraction=exec_properties[spec.MAX_BAD_FRACTION_KEY])
        report_text = json.dumps(report, indent=1, sort_keys=True)
        report_path = os.path.join(examples.uri, spec.REPORT_FILE)
        _write_text(report_path, report_text)
        _write_text(os.path.join(examples.uri, spec.LABELS_FILE), '\n'.join(labels) + '\n')
        logging.info('ImageExampleGen: %d images, %d bad, %d ignored, %d duplicate groups',
                     report['images'], len(report['bad_files']), len(report['ignored_files']),
                     len(report['duplicates']))
        try:
            summary.check(report, report_path)
        except summary.BadDataError as e:
            # TFX deletes a failed execution's outputs; keep the report beside them.
            kept = os.path.join(os.path.dirname(os.path.dirname(examples.uri)), 'failed_runs',
                                os.path.basename(examples.uri), spec.REPORT_FILE)
            _write_text(kept, report_text)
            raise summary.BadDataError(str(e).replace(report_path, kept)) from None
