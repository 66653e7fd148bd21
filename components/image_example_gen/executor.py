"""ImageExampleGen executor: image folders -> TFRecords of tf.train.Example.

We override `GenerateExamplesByBeam`, the base executor's hook for custom
splitting, and `Do`, which writes the splits as the base does (same files, same
artifact properties) but without its Reshuffle of every serialized example: a
shuffle holds the whole data set in memory on the local runner, and ours already
reshuffles the file paths before reading (`Reshuffle` below). One Beam graph lists
every file under the data root (any depth, spread over the workers by folder:
`ListFiles`), places it (`layout.place`), reads and checks the candidate images,
splits a root without split folders per class by content hash (`split.py`), and
writes one manifest line per file (ingested with its split, bad with the reason,
or ignored with the reason). The hash split needs every image's hash before it
can place any image, so there only the small manifest entries wait for it and
each image is read again once its split is known (`ReadAgainFn`): the images'
bytes stream through, whatever the data set's size. After the Beam run the
manifest becomes `image_report.json` and `labels.txt` beside the Split-*
folders, and the run fails if too many files are bad.

The data root is listed and read through `files`: os on a local root (names that
are not UTF-8, paths beyond PATH_MAX, FIFOs, devices, link loops and oversized
files are each one entry's problem), tf.io.gfile on gs:// (and ram:// in tests).
Outputs are written through tf.io.gfile.
"""

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import examples_io
from components.image_example_gen import files
from components.image_example_gen import layout
from components.image_example_gen import records
from components.image_example_gen import spec
from components.image_example_gen import split
from components.image_example_gen import summary
from models import features
from models import image_header

_MANIFEST_TAG = 'manifest'
_MANIFEST_NAME = 'files'
_FOLDERS_TAG = 'folders'
_DUPLICATES_NAME = 'duplicates'     # duplicate groups (summary.duplicate_group), JSON lines


def class_names_from_exec_properties(exec_properties: Dict[str, Any]) -> List[str]:
    return features.class_names(json.loads(exec_properties[spec.CLASS_NAMES_KEY]))


class SplitPlan:
    """How the configs split the data: by folder, or per class by hash."""

    def __init__(self, exec_properties: Dict[str, Any]):
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        self.names = example_gen_utils.generate_output_split_names(input_config, output_config)
        buckets = {s.name: s.hash_buckets for s in output_config.split_config.splits}
        self.by_hash = bool(buckets)
        self.eval_fraction = self.test_fraction = 0.0
        self.folder_splits: Dict[str, str] = {}
        if self.by_hash:
            allowed = {features.TRAIN_SPLIT, features.EVAL_SPLIT, features.TEST_SPLIT}
            if not {features.TRAIN_SPLIT, features.EVAL_SPLIT} <= set(buckets) <= allowed:
                raise ValueError(f'output splits must be {features.TRAIN_SPLIT!r}, '
                                 f'{features.EVAL_SPLIT!r} and optionally '
                                 f'{features.TEST_SPLIT!r}, got {sorted(buckets)}')
            total = sum(buckets.values())
            self.eval_fraction = buckets[features.EVAL_SPLIT] / total
            self.test_fraction = buckets.get(features.TEST_SPLIT, 0) / total
            # split.split_of names the splits by position: train, eval, test.
            self.names = [n for n in (features.TRAIN_SPLIT, features.EVAL_SPLIT,
                                      features.TEST_SPLIT) if n in buckets]
        else:
            # Input split name <- its folder, the first part of its pattern ('train/*').
            self.folder_splits = {s.pattern.split('/')[0]: s.name for s in input_config.splits}


def _placed(listed: files.Listed, split_dirs: Optional[Tuple[str, ...]],
            class_names: List[str]) -> layout.Placement:
    """Where a listed entry goes: `layout.place`, then what the listing found."""
    placement = layout.place(listed.path, split_dirs=split_dirs, class_names=class_names,
                             folder=listed.folder)
    if placement.ignored is None:
        placement = dataclasses.replace(placement, ignored=listed.ignored, bad=listed.bad)
    return dataclasses.replace(placement, link=listed.link)


def _entry(placement: layout.Placement) -> Dict[str, Any]:
    """The manifest entry of a placed file (status ignored until read), as text."""
    entry = {'path': files.display(placement.path), 'status': summary.IGNORED,
             'reason': placement.ignored and files.display(placement.ignored),
             'label_name': placement.class_name,
             'split_dir': placement.split_dir}
    if placement.link is not None:
        entry.update(link=files.display(placement.link.path), link_target=placement.link.target,
                     link_outside_root=placement.link.outside_root)
    return entry


class _ReadImageFn(beam.DoFn):
    """Reads one candidate image; emits (entry, Example) or a manifest entry.

    with_example=False: (entry, Placement), for ReadAgainFn to make the Example later.
    """

    def __init__(self, input_base: str, class_names: List[str], max_pixels: int,
                 max_file_bytes: int, symlinks: str, with_example: bool = True):
        super().__init__()
        self._input_base = input_base
        self._class_names = class_names
        self._max_pixels = max_pixels
        self._max_file_bytes = max_file_bytes
        self._follow = symlinks != files.NONE
        self._with_example = with_example

    def process(self, placement: layout.Placement) -> Iterator[Any]:
        entry = _entry(placement)
        if placement.ignored is not None:
            yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
            return
        reason = placement.bad
        if reason is None:
            try:
                data = files.read_file(self._input_base, placement.path, self._max_file_bytes,
                                       follow=self._follow)
                info = records.inspect_image(data, max_pixels=self._max_pixels)
            except image_header.BadImageError as e:
                reason = e.reason
            except OSError as e:
                reason = files.reason_of(e)
        if reason is not None:
            reason = files.link_noted(reason, placement.path, placement.link)
            entry.update(status=summary.BAD, reason=files.display(reason))
            logging.warning('Bad image %s: %s', entry['path'], reason)
            yield beam.pvalue.TaggedOutput(_MANIFEST_TAG, entry)
            return
        label = self._class_names.index(placement.class_name)
        entry.update(status=summary.OK, label=label, sha256=info.sha256, height=info.height,
                     width=info.width, channels=info.channels, format=info.format,
                     bytes=len(data))
        yield entry, (records.make_example(data, entry['path'], label, self._class_names, info)
                      if self._with_example else placement)


class ReadAgainFn(beam.DoFn):
    """(split, entry, Placement) -> (split, entry, Example): the image read again, once
    the hash split has placed it. Fails the run if the file changed since it was checked."""

    def __init__(self, input_base: str, class_names: List[str], max_file_bytes: int,
                 symlinks: str):
        super().__init__()
        self._input_base = input_base
        self._class_names = class_names
        self._max_file_bytes = max_file_bytes
        self._follow = symlinks != files.NONE

    def process(self, assigned: Tuple[str, Dict[str, Any], layout.Placement]) -> Iterator[Any]:
        name, entry, placement = assigned
        changed = None
        try:
            data = files.read_file(self._input_base, placement.path, self._max_file_bytes,
                                   follow=self._follow)
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 != entry['sha256']:
                changed = (f'sha256 {entry["sha256"][:12]}... when checked, {sha256[:12]}... '
                           'when written')
        except OSError as e:
            changed = f'readable when checked, then: {files.reason_of(e)}'
        if changed:
            raise records.ChangedFileError(
                f'{entry["path"]} changed while ImageExampleGen was reading the data root '
                f'({changed}): run the pipeline again once the folder is no longer being '
                'written')
        info = records.ImageInfo(height=entry['height'], width=entry['width'],
                                 channels=entry['channels'], format=entry['format'],
                                 sha256=sha256)
        yield name, entry, records.make_example(data, entry['path'], entry['label'],
                                                self._class_names, info)


def _group_copies(pair: Tuple[str, Any]) -> Tuple[str, List[int]]:
    sha, labels = pair
    return sha, sorted(set(labels))


def _in_cut_bucket(owned: Tuple[int, str], cuts: Dict[int, Tuple[split.Cut, split.Cut]]
                   ) -> Iterator[Tuple[Tuple[int, int, int], str]]:
    """((class, 0 for eval / 1 for test, rank in the bucket), sha) for a hash in the
    bucket of a boundary."""
    label, sha = owned
    for which, cut in enumerate(cuts.get(label, (None, None))):
        if cut is not None and cut[0] == split.bucket(sha):
            yield (label, which, cut[1]), sha


def _boundaries_of(pair: Tuple[int, Any]) -> Tuple[int, split.Boundaries]:
    label, found = pair
    hashes = dict(found)
    return label, (hashes.get(0), hashes.get(1))


@beam.ptransform_fn
def ClassBoundaries(owned: beam.pvalue.PCollection, plan: SplitPlan):  # pylint: disable=invalid-name
    """(class, unique sha) -> (class, Boundaries), never grouping a whole class (split.py)."""
    cuts = (owned
            | 'ClassBucket' >> beam.Map(lambda pair: ((pair[0], split.bucket(pair[1])), 1))
            | 'CountPerBucket' >> beam.CombinePerKey(sum)
            | 'ByClass' >> beam.Map(lambda pair: (pair[0][0], (pair[0][1], pair[1])))
            | 'BucketCountsOfClass' >> beam.GroupByKey()
            | 'Cuts' >> beam.Map(lambda pair: (pair[0], split.cuts(
                pair[1], plan.eval_fraction, plan.test_fraction))))
    return (owned
            | 'InCutBucket' >> beam.FlatMap(_in_cut_bucket, cuts=beam.pvalue.AsDict(cuts))
            | 'GroupCutBucket' >> beam.GroupByKey()
            | 'BoundaryHash' >> beam.Map(lambda pair: (pair[0][0], (
                pair[0][1], split.boundary_in_bucket(pair[1], pair[0][2]))))
            | 'GroupBoundaries' >> beam.GroupByKey()
            | 'Boundaries' >> beam.Map(_boundaries_of))


@beam.ptransform_fn
def _SplitByHash(images: beam.pvalue.PCollection, plan: SplitPlan):  # pylint: disable=invalid-name
    """(entry, Example) -> (split name, entry, Example), per class by content hash."""
    copies = (images
              | 'ShaLabel' >> beam.Map(lambda image: (image[0]['sha256'], image[0]['label']))
              | 'GroupCopies' >> beam.GroupByKey()
              | 'LabelsOfCopies' >> beam.Map(_group_copies))
    owners = (copies
              | 'FiledUnderSeveral' >> beam.Filter(lambda pair: len(pair[1]) > 1)
              | 'Owner' >> beam.Map(lambda pair: (pair[0], split.owner(pair[1]))))
    boundaries = (copies
                  | 'ByOwner' >> beam.Map(lambda pair: (split.owner(pair[1]), pair[0]))
                  | 'ClassBoundaries' >> ClassBoundaries(plan))  # pylint: disable=no-value-for-parameter
    return images | 'Assign' >> beam.Map(
        lambda image, bounds, owned: (
            split.split_of(image[0]['sha256'], image[0]['label'], bounds, owned, plan.names),
            *image),
        bounds=beam.pvalue.AsDict(boundaries), owned=beam.pvalue.AsDict(owners))


def _with_split(assigned: Tuple[Any, ...]) -> Dict[str, Any]:
    """The manifest entry of an ingested image, with the split it went to."""
    name, entry, _ = assigned
    return {**entry, 'split': name}


def _list_level(folder: files.Folder, root: str, symlinks: str) -> Iterator[Any]:
    """The entries directly in one folder, and its sub-folders as a tagged output."""
    listed, folders = files.list_level(root, folder, symlinks)
    yield from listed
    for sub_folder in folders:
        yield beam.pvalue.TaggedOutput(_FOLDERS_TAG, sub_folder)


@beam.ptransform_fn
def ListFiles(pbegin: beam.pvalue.PBegin, root: str,  # pylint: disable=invalid-name
              symlinks: str = features.SYMLINKS):
    """Every entry under root at any depth, as `files.list_files` gives them, unsorted.

    Nothing is listed while the graph is built: one worker lists the top level
    of root (its entries are output, its folders are the seeds: a handful of class
    or split folders), each seed is listed one level deep on a worker, then each
    of its sub-folders is walked whole on a worker: a pre-split root is listed
    in parallel per class folder, a class-folder root per first-level
    sub-folder of a class. The Reshuffles stop Beam from fusing the steps, so
    each folder can go to a different worker. Nothing is pruned: files in
    hidden folders are listed, for `layout.place` to report as ignored.
    Entries and folders travel as `files.Listed` and `files.Folder` objects
    (pickled), never as bare strings: a name that is not UTF-8 is a str Beam's
    string coder cannot encode.
    """
    top_level = (pbegin
                 | 'Root' >> beam.Create([files.Folder()])
                 | 'ListRoot' >> beam.FlatMap(_list_level, root, symlinks).with_outputs(
                     _FOLDERS_TAG, main='files'))
    seed_level = (top_level[_FOLDERS_TAG]
                  | 'ReshuffleSeeds' >> beam.Reshuffle()
                  | 'ListSeed' >> beam.FlatMap(_list_level, root, symlinks).with_outputs(
                      _FOLDERS_TAG, main='files'))
    walked = (seed_level[_FOLDERS_TAG]
              | 'ReshuffleFolders' >> beam.Reshuffle()
              | 'WalkFolder' >> beam.FlatMap(
                  lambda folder: files.walk(root, folder, symlinks)))
    return ((top_level['files'], seed_level['files'], walked)
            | 'AllFiles' >> beam.Flatten())


def _read_jsonl(prefix: str) -> Iterator[Dict[str, Any]]:
    for path in sorted(tf.io.gfile.glob(prefix + '*.jsonl')):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                yield json.loads(line)


def _write_text(path: str, text: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(text)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads image folders; writes examples, labels.txt and image_report.json."""

    _manifest_prefix: Optional[str] = None
    _duplicates_prefix: Optional[str] = None

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError('ImageExampleGen splits in GenerateExamplesByBeam')

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: Dict[str, Any]
                               ) -> Dict[str, beam.pvalue.PCollection]:
        """Every file under the data root -> Examples per split, and the manifest."""
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        class_names = class_names_from_exec_properties(exec_properties)
        plan = SplitPlan(exec_properties)
        split_dirs = None if plan.by_hash else tuple(plan.folder_splits)
        # Listed in Beam, not here: one process takes hours on 100M photos, and
        # beam.Create of every path would exceed Dataflow's 10 MB job limit.
        max_file_bytes = exec_properties[spec.MAX_FILE_BYTES_KEY]
        symlinks = exec_properties[spec.SYMLINKS_KEY]
        read = (pipeline
                | 'ListFiles' >> ListFiles(input_base, symlinks)  # pylint: disable=no-value-for-parameter
                | 'Place' >> beam.Map(_placed, split_dirs, class_names)
                | 'Reshuffle' >> beam.Reshuffle()
                | 'ReadImage' >> beam.ParDo(_ReadImageFn(
                    input_base, class_names, exec_properties[spec.MAX_PIXELS_KEY],
                    max_file_bytes, symlinks, with_example=not plan.by_hash)).with_outputs(
                        _MANIFEST_TAG, main='images'))
        if plan.by_hash:
            assigned = (read['images']
                        | 'SplitByHash' >> _SplitByHash(plan)  # pylint: disable=no-value-for-parameter
                        | 'ReadAgain' >> beam.ParDo(ReadAgainFn(
                            input_base, class_names, max_file_bytes, symlinks)))
        else:
            assigned = read['images'] | 'SplitByFolder' >> beam.Map(
                lambda image: (plan.folder_splits[image[0]['split_dir']], *image))
        if self._manifest_prefix:
            entries = assigned | 'EntryWithSplit' >> beam.Map(_with_split)
            _ = ((read[_MANIFEST_TAG], entries)
                 | 'AllEntries' >> beam.Flatten()
                 | 'ManifestToJson' >> beam.Map(json.dumps, sort_keys=True)
                 | 'WriteManifest' >> beam.io.WriteToText(self._manifest_prefix,
                                                          file_name_suffix='.jsonl'))
            # Copies found by grouping on the hash here, spread over the workers.
            _ = (entries
                 | 'CopyBySha' >> beam.Map(lambda entry: (entry['sha256'], summary.copy_of(entry)))
                 | 'GroupBySha' >> beam.GroupByKey()
                 | 'DuplicateGroups' >> beam.FlatMap(
                     lambda pair: filter(None, [summary.duplicate_group(*pair)]))
                 | 'DuplicatesToJson' >> beam.Map(json.dumps, sort_keys=True)
                 | 'WriteDuplicates' >> beam.io.WriteToText(self._duplicates_prefix,
                                                            file_name_suffix='.jsonl'))
        parts = assigned | 'Partition' >> beam.Partition(
            lambda image, count: plan.names.index(image[0]), len(plan.names))
        return {name: parts[i] | f'Example[{name}]' >> beam.Map(lambda image: image[2])
                for i, name in enumerate(plan.names)}

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        class_names = class_names_from_exec_properties(exec_properties)
        plan = SplitPlan(exec_properties)
        self._manifest_prefix = os.path.join(examples.uri, spec.MANIFEST_DIR, _MANIFEST_NAME)
        self._duplicates_prefix = os.path.join(examples.uri, spec.MANIFEST_DIR, _DUPLICATES_NAME)
        # What the base Do writes, without its shuffle (module docstring).
        examples.split_names = artifact_utils.encode_split_names(plan.names)
        # BaseBeamExecutor's hook for subclasses, with this component's Beam arguments:
        # the one protected TFX name we use (README, "Imports point one way").
        with self._make_beam_pipeline() as pipeline:
            for name, split_examples in self.GenerateExamplesByBeam(
                    pipeline, exec_properties).items():
                _ = (split_examples
                     | f'Serialize[{name}]' >> beam.Map(lambda example: example.SerializeToString())
                     | f'Write[{name}]' >> beam.io.WriteToTFRecord(
                         os.path.join(artifact_utils.get_split_uri([examples], name),
                                      write_split.DEFAULT_FILE_NAME),
                         file_name_suffix='.gz'))
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload_format:
            examples_utils.set_payload_format(examples, payload_format)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))

        report = summary.summarize(
            _read_jsonl(self._manifest_prefix), _read_jsonl(self._duplicates_prefix),
            class_names, plan.names, hash_split=plan.by_hash,
            eval_fraction=plan.eval_fraction, test_fraction=plan.test_fraction,
            max_bad_fraction=exec_properties[spec.MAX_BAD_FRACTION_KEY],
            stop_on_conflicting_labels=bool(exec_properties[spec.STOP_ON_CONFLICTING_LABELS_KEY]))
        report_text = json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False)
        report_path = os.path.join(examples.uri, spec.REPORT_FILE)
        _write_text(report_path, report_text)
        _write_text(os.path.join(examples.uri, examples_io.CLASS_NAMES_FILE),
                    '\n'.join(class_names) + '\n')
        logging.info('ImageExampleGen: %d files: %d images, %d bad, %d ignored',
                     report['files'], report['images'], len(report['bad_files']),
                     len(report['ignored_files']))
        try:
            summary.check(report, report_path)
        except summary.BadDataError as e:
            # TFX deletes a failed execution's outputs; keep the report beside them.
            kept = os.path.join(os.path.dirname(os.path.dirname(examples.uri)), 'failed_runs',
                                os.path.basename(examples.uri), spec.REPORT_FILE)
            _write_text(kept, report_text)
            raise summary.BadDataError(str(e).replace(report_path, kept)) from None
