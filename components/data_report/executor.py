"""DataReport executor: checks the data and writes verdict.json and index.html."""

import json
import os
from typing import Any, Dict

import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import artifacts
from components import examples_io
from components.data_report import checks
from components.data_report import quality as quality_part
from components.data_report import render
from components.data_report import spec
from components.image_example_gen import spec as example_gen_spec
from models import features

# File names the stock components write.
STATS_FILE = 'FeatureStats.pb'
ANOMALIES_FILE = 'SchemaDiff.pb'
SCHEMA_FILE = 'schema.pbtxt'


def _write(path: str, content: str) -> None:
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(content)


def build_verdict(stats: Dict[str, Any], anomalies: Dict[str, anomalies_pb2.Anomalies],
                  schema, image_report: Dict[str, Any], exec_properties: Dict[str, Any]):
    """All checks of the data set; returns (verdict dict, label drift Anomalies)."""
    class_names = json.loads(exec_properties[spec.CLASS_NAMES_KEY])
    alpha = exec_properties[spec.LABEL_FALSE_ALARM_RATE_KEY]
    counts = {split: checks.label_counts(s.datasets[0], class_names) for split, s in stats.items()}
    problems = []
    for split, split_anomalies in anomalies.items():
        problems += checks.anomaly_problems(split_anomalies, f'{split} split')
    tolerance = exec_properties[spec.BALANCE_TOLERANCE_KEY]
    problems += checks.balance_problems(counts, tolerance, alpha)
    rules = {'balance': {
        split: checks.balance_rule(sum(c.values()), len(class_names), tolerance, alpha)
        for split, c in counts.items()}}
    drift = anomalies_pb2.Anomalies()
    if features.TRAIN_SPLIT in stats and features.EVAL_SPLIT in stats:
        train, evaluation = counts[features.TRAIN_SPLIT], counts[features.EVAL_SPLIT]
        threshold = checks.label_drift_threshold(train, evaluation, alpha)
        drift = checks.label_drift(stats[features.TRAIN_SPLIT], stats[features.EVAL_SPLIT],
                                   schema, threshold)
        problems += checks.drift_problems(drift, train, evaluation, threshold, alpha)
        label, distance = checks.label_shift(train, evaluation)
        rules['drift'] = {'threshold': threshold, 'distance': distance, 'class': label}
    problems += checks.duplicate_problems(
        image_report, exec_properties[spec.MAX_CROSS_SPLIT_DUPLICATES_KEY])
    verdict = {
        'passed': not problems,
        'problems': problems,
        'label_counts': counts,
        'label_rules': rules,
        'files': {key: image_report[key] for key in ('files', 'images')} | {
            'bad': len(image_report['bad_files']),
            'ignored': len(image_report['ignored_files'])},
        'settings': {k: exec_properties[k] for k in (
            spec.BALANCE_TOLERANCE_KEY, spec.LABEL_FALSE_ALARM_RATE_KEY,
            spec.MAX_CROSS_SPLIT_DUPLICATES_KEY)},
    }
    return verdict, drift


class Executor(base_executor.BaseExecutor):
    """Reads the artifacts of the data stages; never fails on bad data."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        statistics = input_dict[spec.STATISTICS_KEY]
        anomalies_artifacts = input_dict[spec.ANOMALIES_KEY]
        schema_uri = artifact_utils.get_single_uri(input_dict[spec.SCHEMA_KEY])
        report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
        class_names = json.loads(exec_properties[spec.CLASS_NAMES_KEY])

        splits = artifact_utils.decode_split_names(examples.split_names)
        stats = {s: tfdv.load_stats_binary(os.path.join(
            artifact_utils.get_split_uri(statistics, s), STATS_FILE)) for s in splits}
        anomalies = {}
        for split in splits:
            with tf.io.gfile.GFile(os.path.join(artifact_utils.get_split_uri(
                    anomalies_artifacts, split), ANOMALIES_FILE), 'rb') as f:
                anomalies[split] = anomalies_pb2.Anomalies.FromString(f.read())
        schema = tfdv.load_schema_text(os.path.join(schema_uri, SCHEMA_FILE))
        image_report = example_gen_spec.read_report(examples.uri)
        if image_report is None:
            raise ValueError(f'{examples.uri} has no {example_gen_spec.REPORT_FILE}: the '
                             'DataReport reads the Examples of ImageExampleGen')

        verdict, drift = build_verdict(stats, anomalies, schema, image_report, exec_properties)
        quality, quality_images = None, {}
        if input_dict.get(spec.DATA_QUALITY_KEY):
            quality = quality_part.read(
                artifact_utils.get_single_uri(input_dict[spec.DATA_QUALITY_KEY]))
            quality_part.add_to_verdict(verdict, quality)
            quality_images = quality_part.read_images(examples.uri, quality_part.pictured(quality))
        html_path = os.path.join(report.uri, artifacts.REPORT_HTML)
        verdict['report'] = html_path
        samples = examples_io.samples_per_label(
            examples.uri, splits[0], class_names, exec_properties[spec.SAMPLES_PER_CLASS_KEY])
        tf.io.gfile.makedirs(report.uri)
        _write(os.path.join(report.uri, artifacts.VERDICT_JSON),
               json.dumps(verdict, indent=1, sort_keys=True))
        _write(os.path.join(report.uri, artifacts.LABEL_DRIFT_PBTXT),
               text_format.MessageToString(drift))
        _write(html_path, render.render(
            verdict=verdict, stats=stats, anomalies=anomalies, drift=drift, schema=schema,
            image_report=image_report, samples=samples, sample_split=splits[0],
            examples_uri=examples.uri,
            quality_sections=quality_part.sections(quality, quality_images) if quality else ()))
        report.set_int_custom_property('passed', int(verdict['passed']))
        logging.info('DataReport: %s, %d problems; report %s',
                     'passed' if verdict['passed'] else 'FAILED', len(verdict['problems']),
                     html_path)
