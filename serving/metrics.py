"""Prometheus metrics, with TF Serving's metric names where they exist.

TF Serving exports its monitoring metrics with '/' replaced by ':', e.g.
`:tensorflow:serving:request_count{model_name,status}`. We keep those names
and label sets so dashboards built for TF Serving work unchanged:

- `:tensorflow:serving:request_count{model_name,status}`: every request,
  status as the canonical code name (OK, INVALID_ARGUMENT, NOT_FOUND, ...).
- `:tensorflow:serving:request_latency{model_name,API,entrypoint}`: a
  histogram in microseconds with TF Serving's buckets (10 * 1.8^i, 33
  buckets), successful requests only, API as TF Serving names it ('predict'
  over REST, 'Predict' over gRPC) and entrypoint 'REST' or 'GRPC'.
- `:tensorflow:cc:saved_model:load_attempt_count{model_path,status}`:
  status 'success' or 'fail'.
- `:tensorflow:serving:model_warmup_records_read{model_path,status}`.

prometheus_client's text format always appends `_total` to a counter's
name; TF Serving's counters have no suffix. The counters above are therefore
exposed as untyped families (through a custom Collector) so that their sample
names are exactly TF Serving's. Our own metrics use ordinary
prometheus_client types:

- `serving_request_decode_seconds{model_name,entrypoint}`: request payload
  to tensors (JSON parsing, base64, TensorProto conversion).
- `serving_preprocess_seconds{model_name}`: checking the tensors against the
  signature and casting them, plus waiting in the batching queue.
- `serving_predict_seconds{model_name,signature}`: one SavedModel call (a
  whole batch when batching is on). The exported model decodes and resizes
  images inside its graph, so that time is part of this one.
- `serving_batch_size{model_name}`: examples per SavedModel call.
"""

import collections
import threading
from typing import Dict, Iterable, Optional, Tuple

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
import prometheus_client
from prometheus_client import metrics_core

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

REQUEST_COUNT = ':tensorflow:serving:request_count'
REQUEST_LATENCY = ':tensorflow:serving:request_latency'
LOAD_ATTEMPT_COUNT = ':tensorflow:cc:saved_model:load_attempt_count'
WARMUP_RECORDS_READ = ':tensorflow:serving:model_warmup_records_read'

DECODE_SECONDS = 'serving_request_decode_seconds'
PREPROCESS_SECONDS = 'serving_preprocess_seconds'
PREDICT_SECONDS = 'serving_predict_seconds'
BATCH_SIZE = 'serving_batch_size'
# PREDICT_SECONDS' runtime label: what answered the call.
RUNTIME_TENSORFLOW = 'tensorflow'
RUNTIME_TFLITE = 'tflite'

# monitoring::Buckets::Exponential(10, 1.8, 33): 10us .. ~20 minutes, with the
# six significant digits TF Serving's exporter prints (32.4, not
# 32.400000000000006).
TF_SERVING_LATENCY_BUCKETS = tuple(float(f'{10.0 * 1.8 ** i:.6g}')
                                   for i in range(33))
_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _CounterTable:
    """Thread-safe counts keyed by label values."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, ...], float] = collections.Counter()

    def add(self, labels: Tuple[str, ...], amount: float = 1) -> None:
        with self._lock:
            self._counts[labels] += amount

    def items(self):
        with self._lock:
            return sorted(self._counts.items())


class _TfServingCounters:
    """Collector yielding TF Serving's counters under their exact names."""

    def __init__(self, tables: Iterable[Tuple[str, str, Tuple[str, ...],
                                              _CounterTable]]):
        self._tables = list(tables)

    def describe(self):
        return []

    def collect(self):
        for name, documentation, label_names, table in self._tables:
            family = metrics_core.UnknownMetricFamily(
                name, documentation, labels=label_names)
            for labels, value in table.items():
                family.add_metric(list(labels), value)
            yield family


class ServingMetrics:
    """All metrics of one server, in a registry of its own.

    The exposition leaves out prometheus_client's `*_created` series, as TF
    Serving exports none (per page, not by switching them off process-wide).
    """

    def __init__(self):
        self.registry = prometheus_client.CollectorRegistry()
        self._request_count = _CounterTable()
        self._load_attempts = _CounterTable()
        self._warmup_records = _CounterTable()
        self.registry.register(_TfServingCounters([
            (REQUEST_COUNT, 'The total number of requests.',
             ('model_name', 'status'), self._request_count),
            (LOAD_ATTEMPT_COUNT,
             'The number of times a SavedModel was successfully loaded.',
             ('model_path', 'status'), self._load_attempts),
            (WARMUP_RECORDS_READ,
             'Total number of warmup records read during model warmup.',
             ('model_path', 'status'), self._warmup_records),
        ]))
        self._request_latency = prometheus_client.Histogram(
            REQUEST_LATENCY,
            'Distribution of wall time (in microseconds) for Tensorflow '
            'Serving request.',
            ['model_name', 'API', 'entrypoint'],
            buckets=TF_SERVING_LATENCY_BUCKETS, registry=self.registry)
        self._decode = prometheus_client.Histogram(
            DECODE_SECONDS, 'Request payload to input tensors, in seconds.',
            ['model_name', 'entrypoint'], buckets=_SECONDS_BUCKETS,
            registry=self.registry)
        self._preprocess = prometheus_client.Histogram(
            PREPROCESS_SECONDS,
            'Input checks, casting and batching queue wait, in seconds.',
            ['model_name'], buckets=_SECONDS_BUCKETS, registry=self.registry)
        self._predict = prometheus_client.Histogram(
            PREDICT_SECONDS, 'One model signature call, in seconds; runtime '
            f'{RUNTIME_TENSORFLOW} (the SavedModel) or {RUNTIME_TFLITE} '
            '(model.tflite, --prefer_tflite_model).',
            ['model_name', 'signature', 'runtime'], buckets=_SECONDS_BUCKETS,
            registry=self.registry)
        self._batch_size = prometheus_client.Histogram(
            BATCH_SIZE, 'Examples per SavedModel call.', ['model_name'],
            buckets=_BATCH_BUCKETS, registry=self.registry)

    def record_request(self, model_name: str, api: str, entrypoint: str,
                       status: str, latency_seconds: float) -> None:
        """Counts a request; its latency is kept only when it succeeded."""
        self._request_count.add((model_name, status))
        if status == 'OK':
            self._request_latency.labels(model_name, api, entrypoint).observe(
                latency_seconds * 1e6)

    def record_load(self, model_path: str, *, success: bool) -> None:
        """Counts one SavedModel load attempt."""
        self._load_attempts.add((model_path, 'success' if success else 'fail'))

    def record_warmup(self, model_path: str, status: str, records: int) -> None:
        """Counts the warmup records read for a version."""
        self._warmup_records.add((model_path, status), records)

    def observe_decode(self, model_name: str, entrypoint: str,
                       seconds: float) -> None:
        """Observes payload decoding time."""
        self._decode.labels(model_name, entrypoint).observe(seconds)

    def observe_preprocess(self, model_name: str, seconds: float) -> None:
        """Observes input checking and queueing time."""
        self._preprocess.labels(model_name).observe(seconds)

    def observe_predict(self, model_name: str, signature: str, runtime: str,
                        seconds: float) -> None:
        """Observes one model call (runtime: RUNTIME_TENSORFLOW or RUNTIME_TFLITE)."""
        self._predict.labels(model_name, signature, runtime).observe(seconds)

    def observe_batch_size(self, model_name: str, size: int) -> None:
        """Observes the examples of one SavedModel call."""
        self._batch_size.labels(model_name).observe(size)

    def exposition(self) -> bytes:
        """The Prometheus text format page."""
        return prometheus_client.generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry view whose families carry no `*_created` samples."""

    def __init__(self, registry: prometheus_client.CollectorRegistry):
        self._registry = registry

    def collect(self):
        for family in self._registry.collect():
            family.samples = [sample for sample in family.samples
                              if not sample.name.endswith('_created')]
            yield family


def _monitoring_config_message():
    """tensorflow.serving.MonitoringConfig, from its published field numbers.

    (tensorflow-serving-api's pip package does not ship monitoring_config_pb2.)
    """
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(
        name='serving/monitoring_config.proto', package='tensorflow.serving',
        syntax='proto3')
    field = descriptor_pb2.FieldDescriptorProto
    prometheus = proto.message_type.add(name='PrometheusConfig')
    prometheus.field.add(name='enable', number=1, label=field.LABEL_OPTIONAL,
                         type=field.TYPE_BOOL)
    prometheus.field.add(name='path', number=2, label=field.LABEL_OPTIONAL,
                         type=field.TYPE_STRING)
    monitoring = proto.message_type.add(name='MonitoringConfig')
    monitoring.field.add(name='prometheus_config', number=1,
                         label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                         type_name='.tensorflow.serving.PrometheusConfig')
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName('tensorflow.serving.MonitoringConfig'))


def read_monitoring_config(text: str, default_path: str) -> Optional[str]:
    """The metrics path a TF Serving monitoring config names, None if disabled.

    Raises:
      ValueError: the text is not a MonitoringConfig.
    """
    config = _monitoring_config_message()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError('Error parsing text-format '
                         f'tensorflow.serving.MonitoringConfig: {error}') from None
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or default_path
