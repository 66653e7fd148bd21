"""Finds model versions under each base path, loads, warms, hot-reloads them.

TF Serving's layout: `<base_path>/<integer version>/saved_model.pb`. As the
TFX Pusher copies `saved_model.pb` last, a version directory counts only once
that file is there. For each configured model the store:

- lists the numeric version directories holding saved_model.pb (or .pbtxt),
- picks the versions to serve with the model's version policy (`latest`
  N, default 1; `specific` versions; `all`), as TF Serving does,
- loads a new version with `tf.saved_model.load` (with --prefer_tflite_model
  also its model.tflite: serving/tflite_model.py), replays its warmup file,
  and only then makes it AVAILABLE; an older version is unloaded only after
  that,
- reports a version that fails to load or warm up (logged, and END with the
  error in the model's status), retries it as `--max_num_load_retries` and
  `--load_retry_interval_micros` say, and meanwhile keeps serving the version
  that was serving (as TF Serving's availability-preserving policy does);
  when nothing is serving yet (e.g. at start with a corrupt newest version),
  the policy is applied again without the failed version, so the next best
  version serves (TF Serving would serve nothing),
- unloads versions that leave the policy or the disk,
- keeps version labels, checked as TF Serving checks them: a label may only
  point at an AVAILABLE version, unless
  `--allow_version_labels_for_unavailable_models` is set and the label is new
  or unchanged.

The model config is TF Serving's `ModelServerConfig` text proto; it can be
re-applied at any time (config file polling) and the store converges to it.
"""

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from google.protobuf import text_format
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from models import tflite_export
from serving import errors
from serving import tf1_models
from serving import tflite_model

_State = get_model_status_pb2.ModelVersionStatus.State
START = _State.Value('START')
LOADING = _State.Value('LOADING')
AVAILABLE = _State.Value('AVAILABLE')
UNLOADING = _State.Value('UNLOADING')
END = _State.Value('END')

SAVED_MODEL_FILES = ('saved_model.pb', 'saved_model.pbtxt')
SERVE_TAG = 'serve'


@dataclasses.dataclass
class Servable:
    """One loaded model version."""
    name: str
    version: int
    path: str
    module: Any
    signature_defs: Dict[str, Any]   # name -> tensorflow SignatureDef proto
    functions: Dict[str, Any]        # name -> callable concrete function
    # With --prefer_tflite_model: the version's model.tflite, which answers predict on
    # the signatures it serves (None: everything runs on the SavedModel).
    tflite: Optional[tflite_model.TfLiteModel] = None


@dataclasses.dataclass
class VersionStatus:
    """A version's state as GetModelStatus reports it."""
    version: int
    state: int
    error_code: errors.Code = errors.Code.OK
    error_message: str = ''


@dataclasses.dataclass
class _Record:
    version: int
    path: str
    state: int = START
    error_code: errors.Code = errors.Code.OK
    error_message: str = ''
    servable: Optional[Servable] = None
    failures: int = 0
    next_retry: float = 0.0

    def status(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error_code,
                             self.error_message)


class _Model:

    def __init__(self, config):
        self.config = config
        self.records: Dict[int, _Record] = {}
        self.warned_missing = False


def parse_config_text(text: str):
    """Parses a ModelServerConfig text proto and validates it.

    Raises:
      ValueError: on a parse error or an invalid config.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        # TF Serving's words (protobuf's text parser, then its own).
        raise ValueError('Error parsing text-format '
                         f'tensorflow.serving.ModelServerConfig: {error}') from None
    validate_config(config)
    return config


def read_config_file(path: str):
    """Reads and validates a ModelServerConfig text file (local or gs://)."""
    with tf.io.gfile.GFile(path, 'r') as handle:
        return parse_config_text(handle.read())


def single_model_config(model_name: str, base_path: str):
    """The config of `--model_name`/`--model_base_path`."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = 'tensorflow'
    validate_config(config)
    return config


def validate_config(config) -> None:
    """Checks what TF Serving's ValidateModelConfigList checks.

    Raises:
      ValueError: with the offending value.
    """
    if config.WhichOneof('config') != 'model_config_list':
        raise ValueError('Only model_config_list is supported, got '
                         f'{config.WhichOneof("config")!r}')
    names = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ValueError(f'A model config has no name: {model}')
        if model.name in names:
            raise ValueError(f'Illegal to list model {model.name} multiple '
                             'times in config list')
        names.add(model.name)
        if not model.base_path:
            raise ValueError(f'Model {model.name!r} has an empty base_path')
        if model.model_platform not in ('', 'tensorflow'):
            raise ValueError(f'Model {model.name!r} has model_platform '
                             f'{model.model_platform!r}; only "tensorflow" is '
                             'served')
        policy = model.model_version_policy
        if (policy.WhichOneof('policy_choice') == 'specific'
                and not policy.specific.versions):
            raise ValueError(f'Model {model.name!r} has a specific version '
                             'policy with no versions')


def list_versions(base_path: str) -> Dict[int, str]:
    """Numeric version directories holding a SavedModel, by version number.

    Returns:
      {version: path}; empty if the base path does not exist.
    """
    if not tf.io.gfile.isdir(base_path):
        return {}
    found: Dict[int, str] = {}
    for child in sorted(tf.io.gfile.listdir(base_path)):
        name = child.rstrip('/')
        if not name.isdigit():
            continue
        version = int(name)
        path = os.path.join(base_path, name)
        if not any(tf.io.gfile.exists(os.path.join(path, f))
                   for f in SAVED_MODEL_FILES):
            continue
        if version in found:
            logging.warning('Ignoring %s: version %d is already at %s', path,
                            version, found[version])
            continue
        found[version] = path
    return found


def read_signature_defs(saved_model_dir: str,
                        tag: str = SERVE_TAG) -> Dict[str, Any]:
    """The SignatureDefs of the meta graph tagged `tag`, as TF Serving sees them.

    Raises:
      ValueError: if the SavedModel has no meta graph with that tag.
    """
    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(saved_model_dir, 'saved_model.pb')
    if tf.io.gfile.exists(pb_path):
        with tf.io.gfile.GFile(pb_path, 'rb') as handle:
            saved_model.ParseFromString(handle.read())
    else:
        with tf.io.gfile.GFile(os.path.join(saved_model_dir,
                                            'saved_model.pbtxt'), 'r') as handle:
            text_format.Parse(handle.read(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f'{saved_model_dir!r} has no meta graph tagged {tag!r}; '
                     'tags: ' + repr([list(m.meta_info_def.tags)
                                      for m in saved_model.meta_graphs]))


def load_servable(name: str, version: int, path: str, *,
                  prefer_tflite_model: bool = False,
                  num_tflite_pools: int = 0) -> Servable:
    """Loads one version directory.

    A TF1 SavedModel that tf.saved_model.load cannot import because TensorFlow
    1.0 wrote it is loaded as TF Serving reads it (serving/tf1_models.py).
    With `prefer_tflite_model`, the folder's model.tflite (if any) is loaded
    too, with `num_tflite_pools` interpreters (0: one per core).
    """
    signature_defs = read_signature_defs(path)
    try:
        module = tf.saved_model.load(path, tags=[SERVE_TAG])
    except (ValueError, tf.errors.OpError):
        module = (tf1_models.load_legacy(path, [SERVE_TAG])
                  if tf1_models.is_tf1(path) else None)
        if module is None:
            raise
    functions = dict(module.signatures.items())
    tflite = None
    if prefer_tflite_model and tf.io.gfile.exists(
            os.path.join(path, tflite_export.SERVING_FILE)):
        tflite = tflite_model.load(path, signature_defs, functions,
                                   num_tflite_pools)
    return Servable(name, version, path, module, signature_defs, functions,
                    tflite)


def _select(policy, versions: Set[int]) -> Set[int]:
    choice = policy.WhichOneof('policy_choice')
    if choice == 'all':
        return set(versions)
    if choice == 'specific':
        return set(policy.specific.versions) & set(versions)
    count = policy.latest.num_versions if choice == 'latest' else 0
    return set(sorted(versions, reverse=True)[:max(count, 1)])


def _as_serving_error(error: Exception) -> errors.ServingError:
    if isinstance(error, errors.ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        return errors.from_tf_error(error)
    return errors.ServingError(errors.Code.UNKNOWN,
                               f'{type(error).__name__}: {error}')


class ModelStore:
    """The models of one server and the versions loaded for each."""

    def __init__(self, *, metrics=None, max_num_load_retries: int = 5,
                 load_retry_interval_micros: int = 60_000_000,
                 allow_version_labels_for_unavailable_models: bool = False,
                 warmup: Optional[Callable[[Servable], Optional[int]]] = None,
                 on_unload: Optional[Callable[[Servable], None]] = None,
                 prefer_tflite_model: bool = False, num_tflite_pools: int = 0):
        if max_num_load_retries < 0:
            raise ValueError('max_num_load_retries must be >= 0, got '
                             f'{max_num_load_retries}')
        self._metrics = metrics
        self._max_retries = max_num_load_retries
        self._retry_interval = max(load_retry_interval_micros, 0) / 1e6
        self._allow_unavailable_labels = (
            allow_version_labels_for_unavailable_models)
        self._warmup = warmup        # hooks, set once here (serving/server.py wires them)
        self._on_unload = on_unload
        self._prefer_tflite_model = prefer_tflite_model
        self._num_tflite_pools = num_tflite_pools
        self._lock = threading.Lock()            # guards the maps below
        self._reconcile_lock = threading.RLock()  # one reconcile at a time
        self._models: Dict[str, _Model] = {}
        self._labels: Dict[str, Dict[str, int]] = {}
        self._config = None
        self._label_error: Optional[str] = None
        self._configured = False
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    # ------------------------------------------------------------ config

    def apply_config(self, config, *, initial: bool = False) -> None:
        """Converges to `config`: adds/removes models, loads, sets labels.

        Args:
          config: a ModelServerConfig.
          initial: the server's first config; label errors are then fatal to
            the caller (TF Serving refuses to start).

        Raises:
          ValueError: the config is invalid (nothing changed).
          ServingError: FAILED_PRECONDITION when a label points at a version
            that is not available (the models were still applied; the
            previous labels are kept and retried at each poll).
        """
        validate_config(config)
        with self._reconcile_lock:
            wanted = {m.name: m for m in config.model_config_list.config}
            with self._lock:
                removed = [self._models.pop(name) for name in list(self._models)
                           if name not in wanted]
                for name, model_config in wanted.items():
                    if name in self._models:
                        self._models[name].config = model_config
                    else:
                        self._models[name] = _Model(model_config)
                self._config = config
            for model in removed:
                logging.info('Removing model %s', model.config.name)
                for record in list(model.records.values()):
                    self._unload(model, record)
            for name in wanted:
                self._reconcile(self._models[name])
            self._update_labels(raise_errors=True)
            self._configured = True
            if initial:
                logging.info('Finished adding/updating models')

    def poll(self) -> None:
        """One file system poll of every model, then pending labels."""
        with self._reconcile_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                self._reconcile(model)
            if self._label_error is not None:
                self._update_labels(raise_errors=False)

    def _update_labels(self, *, raise_errors: bool) -> None:
        config = self._config
        new_labels: Dict[str, Dict[str, int]] = {}
        problems = []
        with self._lock:
            for model_config in config.model_config_list.config:
                model = self._models[model_config.name]
                for label, version in sorted(model_config.version_labels.items()):
                    record = model.records.get(version)
                    available = record is not None and record.state == AVAILABLE
                    existing = self._labels.get(model_config.name, {}).get(label)
                    allowed = available or (
                        self._allow_unavailable_labels
                        and existing in (None, version))
                    if not allowed:
                        problems.append(
                            f'Request to assign label to version {version} of '
                            f'model {model_config.name}, which is not currently '
                            'available for inference')
                    new_labels.setdefault(model_config.name, {})[label] = version
            if not problems:
                changed = new_labels != self._labels
                self._labels = new_labels
                self._label_error = None
        if not problems:
            if changed:
                logging.info('Version labels: %s', new_labels)
            return
        message = '; '.join(problems)
        if message != self._label_error:
            logging.error('Version labels not updated: %s', message)
        self._label_error = message
        if raise_errors:
            raise errors.failed_precondition(message)

    # ----------------------------------------------------------- loading

    def _loadable(self, record: Optional[_Record], now: float) -> bool:
        if record is None or record.state == AVAILABLE:
            return True
        if record.failures == 0:
            return True
        return record.failures <= self._max_retries and now >= record.next_retry

    def _reconcile(self, model: _Model) -> None:
        name = model.config.name
        try:
            present = list_versions(model.config.base_path)
        except (tf.errors.OpError, OSError) as error:
            logging.error('Cannot list base path %s of model %s: %s',
                          model.config.base_path, name, error)
            return
        if not present and not model.warned_missing:
            logging.warning('No versions of servable %s found under base path '
                            '%s', name, model.config.base_path)
        model.warned_missing = not present
        with self._lock:
            for version, record in list(model.records.items()):
                if version not in present and record.servable is None:
                    record.failures = 0   # a re-pushed version is tried anew
        policy = model.config.model_version_policy
        failed_now: Set[int] = set()

        def candidates() -> Set[int]:
            now = time.monotonic()
            return {v for v in present if v not in failed_now
                    and self._loadable(model.records.get(v), now)}

        # Load the policy's choice among the versions that can load; when one
        # fails, choose again without it, so the next best version serves.
        while not self._stop.is_set():
            pending = sorted(
                (v for v in _select(policy, candidates())
                 if not (v in model.records
                         and model.records[v].state == AVAILABLE)),
                reverse=True)
            if not pending:
                break
            self._load(model, pending[0], present[pending[0]])
            if model.records[pending[0]].state != AVAILABLE:
                failed_now.add(pending[0])
        keep = _select(policy, candidates())
        for version, record in list(model.records.items()):
            if record.state == AVAILABLE and version not in keep:
                self._unload(model, record)

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        with self._lock:
            record = model.records.get(version)
            if record is None or record.path != path:
                record = _Record(version, path, failures=(
                    record.failures if record else 0))
                model.records[version] = record
            record.state = LOADING
            record.error_code, record.error_message = errors.Code.OK, ''
        logging.info('Loading servable version {name: %s version: %d} from %s',
                     name, version, path)
        started = time.monotonic()
        try:
            servable = load_servable(
                name, version, path,
                prefer_tflite_model=self._prefer_tflite_model,
                num_tflite_pools=self._num_tflite_pools)
        except Exception as error:  # pylint: disable=broad-except
            if self._metrics is not None:
                self._metrics.record_load(path, success=False)
            self._fail(name, record, _as_serving_error(error), 'Loading')
            return
        if self._metrics is not None:
            self._metrics.record_load(path, success=True)
        try:
            if self._warmup is not None:
                self._warmup(servable)
        except Exception as error:  # pylint: disable=broad-except
            self._fail(name, record, _as_serving_error(error), 'Warming up')
            if self._on_unload is not None:
                self._on_unload(servable)
            return
        with self._lock:
            record.servable = servable
            record.state = AVAILABLE
            record.failures = 0
        logging.info('Successfully loaded servable version {name: %s version: '
                     '%d} in %.2fs', name, version, time.monotonic() - started)

    def _fail(self, name: str, record: _Record, error: errors.ServingError,
              what: str) -> None:
        with self._lock:
            record.state = END
            record.servable = None
            record.error_code = (error.code if error.code != errors.Code.OK
                                 else errors.Code.UNKNOWN)
            record.error_message = error.message
            record.failures += 1
            record.next_retry = time.monotonic() + self._retry_interval
            retries_left = self._max_retries - record.failures + 1
        logging.error('%s servable version {name: %s version: %d} from %s '
                      'failed: %s%s', what, name, record.version,
                      record.path, error.status_string(),
                      f' (retries left: {retries_left})' if retries_left > 0
                      else ' (giving up until the version directory changes)')

    def _unload(self, model: _Model, record: _Record) -> None:
        logging.info('Unloading servable version {name: %s version: %d}',
                     model.config.name, record.version)
        with self._lock:
            servable = record.servable
            record.state = UNLOADING
            record.servable = None
            record.state = END
            record.error_code, record.error_message = errors.Code.OK, ''
        if servable is not None and self._on_unload is not None:
            self._on_unload(servable)
        logging.info('Done unloading servable version {name: %s version: %d}',
                     model.config.name, record.version)

    # ----------------------------------------------------------- queries

    def model_names(self) -> List[str]:
        """The configured model names, sorted."""
        with self._lock:
            return sorted(self._models)

    def has_model(self, name: str) -> bool:
        """Whether `name` is a configured model."""
        with self._lock:
            return name in self._models

    def _model_hint(self) -> str:
        names = sorted(self._models)
        return ('served models: ' + ', '.join(names) + '.') if names else (
            'no model is configured.')

    def resolve(self, name: str, version: Optional[int] = None,
                label: Optional[str] = None) -> Servable:
        """The servable a request names: latest, a version or a label.

        Raises:
          ServingError: INVALID_ARGUMENT for an unknown label or both version
            and label, NOT_FOUND for an unknown model or unavailable version.
        """
        with self._lock:
            if version is not None and label:
                raise errors.invalid_argument(
                    f'Both model version ({version}) and model version label '
                    f'({label}) cannot be supplied.')
            model = self._models.get(name)
            if label:
                labels = self._labels.get(name, {})
                if label not in labels:
                    hint = (f'labels of model {name}: '
                            f'{", ".join(sorted(labels))}.' if labels else
                            f'model {name} has no version labels.'
                            if model else self._model_hint())
                    raise errors.invalid_argument(
                        'Unrecognized servable version label: '
                        f'{label}').with_hint(hint)
                version = labels[label]
            request = (f'Specific({name}, {version})' if version is not None
                       else f'Latest({name})')
            if model is None:
                if not self._configured:
                    # The ports open before the first config is applied: a
                    # client should retry, not give up (UNAVAILABLE, not
                    # NOT_FOUND).
                    raise errors.unavailable(
                        f'Servable not found for request: {request}: the server '
                        'is still loading its models').with_hint(
                            'retry; GET /readyz says when they are in.')
                raise errors.not_found(
                    f'Servable not found for request: {request}').with_hint(
                        self._model_hint())
            available = {v: r for v, r in model.records.items()
                         if r.state == AVAILABLE}
            if not available and any(r.state == LOADING
                                     for r in model.records.values()):
                raise errors.unavailable(
                    f'Servable not found for request: {request}: model {name} '
                    'is loading').with_hint(
                        'retry; GET /readyz says when it is in.')
            if version is None:
                if not available:
                    raise errors.not_found(
                        f'Servable not found for request: Latest({name})'
                    ).with_hint(f'model {name} has no AVAILABLE version yet; '
                                f'see GET /v1/models/{name}.')
                return available[max(available)].servable
            if version not in available:
                raise errors.not_found(
                    f'Servable not found for request: Specific({name}, '
                    f'{version})').with_hint(
                        f'available versions of {name}: '
                        f'{", ".join(str(v) for v in sorted(available)) or "none"}.')
            return available[version].servable

    def model_status(self, name: str, version: Optional[int] = None,
                     label: Optional[str] = None) -> List[VersionStatus]:
        """Version states, newest first, as GetModelStatus reports them.

        Raises:
          ServingError: NOT_FOUND for an unknown model or version,
            INVALID_ARGUMENT for an unknown label.
        """
        if label:
            with self._lock:
                labels = self._labels.get(name, {})
                if label not in labels:
                    raise errors.invalid_argument(
                        f'Unrecognized servable version label: {label}')
                version = labels[label]
        with self._lock:
            model = self._models.get(name)
            records = dict(model.records) if model else {}
            if version is not None:
                if version not in records:
                    raise errors.not_found(
                        f'Could not find version {version} of model {name}')
                return [records[version].status()]
            if not records:
                hint = '' if model else self._model_hint()
                raise errors.not_found(
                    f'Could not find any versions of model {name}').with_hint(
                        hint)
            return [records[v].status() for v in sorted(records, reverse=True)]

    def labels(self, name: str) -> Dict[str, int]:
        """The model's version labels in force."""
        with self._lock:
            return dict(self._labels.get(name, {}))

    def readiness(self) -> Tuple[bool, Dict[str, str]]:
        """(ready, per-model reason): every model has an AVAILABLE version."""
        with self._lock:
            if not self._configured:
                return False, {name: 'loading' for name in self._models} or {
                    '': 'no config applied yet'}
            detail = {}
            for name, model in sorted(self._models.items()):
                available = sorted(v for v, r in model.records.items()
                                   if r.state == AVAILABLE)
                detail[name] = ('AVAILABLE: ' + ', '.join(map(str, available))
                                if available else 'no AVAILABLE version')
            ready = bool(self._models) and all(
                any(r.state == AVAILABLE for r in m.records.values())
                for m in self._models.values())
            if self._label_error:
                detail['version_labels'] = self._label_error
            return ready, detail

    # ----------------------------------------------------------- pollers

    def start_polling(self, file_system_poll_wait_seconds: float, *,
                      config_path: Optional[str] = None,
                      config_poll_wait_seconds: float = 0) -> None:
        """Polls base paths (and the config file) in a background thread.

        A wait of zero or less means no periodic poll, as in TF Serving.
        """
        if file_system_poll_wait_seconds > 0:
            self._start_thread('fs-poll', file_system_poll_wait_seconds,
                               self.poll)
        if config_path and config_poll_wait_seconds > 0:
            watcher = _ConfigWatcher(self, config_path)
            self._start_thread('config-poll', config_poll_wait_seconds,
                               watcher.check)

    def _start_thread(self, name: str, interval: float,
                      action: Callable[[], None]) -> None:
        def loop():
            while not self._stop.wait(interval):
                try:
                    action()
                except Exception:  # pylint: disable=broad-except
                    logging.exception('%s failed', name)
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stops polling and unloads everything."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        with self._reconcile_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                for record in list(model.records.values()):
                    if record.state == AVAILABLE:
                        self._unload(model, record)


class _ConfigWatcher:
    """Re-applies the model config file when its text changes."""

    def __init__(self, store: ModelStore, path: str):
        self._store = store
        self._path = path
        self._last_text: Optional[str] = None
        try:
            with tf.io.gfile.GFile(path, 'r') as handle:
                self._last_text = handle.read()
        except (tf.errors.OpError, OSError):
            pass

    def check(self) -> None:
        try:
            with tf.io.gfile.GFile(self._path, 'r') as handle:
                text = handle.read()
        except (tf.errors.OpError, OSError) as error:
            logging.error('Cannot read model config file %s: %s', self._path,
                          error)
            return
        if text == self._last_text:
            return
        self._last_text = text
        try:
            config = parse_config_text(text)
        except ValueError as error:
            logging.error('Ignoring model config file %s: %s', self._path, error)
            return
        logging.info('Model config file %s changed; reloading', self._path)
        try:
            self._store.apply_config(config)
        except errors.ServingError as error:
            logging.error('Model config applied, labels kept as they were: %s',
                          error.message)
