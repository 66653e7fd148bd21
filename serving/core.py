"""The one predict/classify/regress/metadata/status path of both transports.

REST (`serving.rest`) and gRPC (`serving.grpc_server`) only translate their
payloads; everything else happens here, in the order TF Serving does it:
resolve the servable (latest, version or label), find the signature, decode
the inputs against it, check names/dtypes/shapes, run the SavedModel (through
the batcher when batching is on; with --prefer_tflite_model, the version's
model.tflite where it serves the signature: serving/tflite_model.py), and shape
the result. Every failure is a
`ServingError` with TF Serving's code and message plus a hint. Each request
is a `Call`, which feeds the metrics and the request log when it finishes.
Warmup replays go through the same functions, minus the bookkeeping.
"""

import ctypes
import dataclasses
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from models import features
from serving import errors
from serving import inputs as inputs_lib
from serving import json_tensor
from serving import limits as limits_lib
from serving import metrics as metrics_lib
from serving import request_log as request_log_lib
from serving import warmup as warmup_lib

# TF Serving's signature keys (tensorflow/cc/saved_model/signature_constants.h).
DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
CLASSIFY_INPUTS = tf.saved_model.CLASSIFY_INPUTS
CLASSIFY_CLASSES = tf.saved_model.CLASSIFY_OUTPUT_CLASSES
CLASSIFY_SCORES = tf.saved_model.CLASSIFY_OUTPUT_SCORES
REGRESS_INPUTS = tf.saved_model.REGRESS_INPUTS
REGRESS_OUTPUTS = tf.saved_model.REGRESS_OUTPUTS
SIGNATURE_DEF_FIELD = 'signature_def'   # GetModelMetadataImpl::kSignatureDef
CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME
REGRESS_METHOD = tf.saved_model.REGRESS_METHOD_NAME

PREDICT, CLASSIFY, REGRESS = 'predict', 'classify', 'regress'
METADATA, STATUS = 'metadata', 'status'
MULTI_INFERENCE = 'multi_inference'
REST, GRPC = 'REST', 'GRPC'
# The model_name label (and request log name) of requests for models the
# server does not serve.
UNKNOWN_MODEL = '(unknown)'
# TF Serving's `API` metric label: the REST method, the gRPC method name.
_GRPC_API = {PREDICT: 'Predict', CLASSIFY: 'Classify', REGRESS: 'Regress',
             METADATA: 'GetModelMetadata', STATUS: 'GetModelStatus',
             MULTI_INFERENCE: 'MultiInference'}


class ModelSpec(NamedTuple):
    """Which servable a request names."""
    name: str
    version: Optional[int] = None
    label: Optional[str] = None


@dataclasses.dataclass
class Call:
    """One request, as the metrics and the request log see it."""
    kind: str
    entrypoint: str
    model_name: str
    started: float = dataclasses.field(default_factory=time.perf_counter)
    version: Optional[int] = None
    signature: str = ''
    sampled: bool = False
    images: List[bytes] = dataclasses.field(default_factory=list)
    predictions: List[Tuple[Optional[str], Optional[float]]] = (
        dataclasses.field(default_factory=list))
    http_status: Optional[int] = None
    # time.monotonic() after which the request's work stops (None: no deadline).
    deadline: Optional[float] = None
    # True once the client has gone (closed connection, cancelled RPC).
    cancelled: Callable[[], bool] = lambda: False

    def check(self, done: int = 0, total: int = 0) -> None:
        """Raises once the deadline has passed or the client has gone.

        Raises:
          ServingError: DEADLINE_EXCEEDED or CANCELLED, saying how far the
            work got when `total` is given.
        """
        progress = (f' after {done} of {total} instances' if total else '')
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise errors.ServingError(errors.Code.DEADLINE_EXCEEDED,
                                      f'Deadline Exceeded{progress}')
        if self.cancelled():
            raise errors.ServingError(errors.Code.CANCELLED,
                                      f'Request cancelled by the client{progress}')

    @property
    def api(self) -> str:
        if self.entrypoint == GRPC:
            return _GRPC_API[self.kind]
        return self.kind if self.kind in (PREDICT, CLASSIFY, REGRESS) else ''


def _shape_string(dims: Sequence[int]) -> str:
    return '[' + ','.join(str(d) for d in dims) + ']'


def _signature_shape(info) -> Optional[List[int]]:
    if info.tensor_shape.unknown_rank:
        return None
    return [d.size for d in info.tensor_shape.dim]


# After a request that decoded this many pixels, malloc's freed pages go back to
# the system: with --tensorflow_system_allocator its images were malloc'ed, and
# glibc keeps freed heap pages otherwise.
_TRIM_AFTER_PIXELS = 10_000_000


def _return_freed_memory() -> None:
    """glibc's malloc_trim(0); nothing where the C library has none."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _batch_size(signature_def, inputs: Mapping[str, np.ndarray]
                ) -> Optional[int]:
    """The shared first dimension when the signature batches, else None.

    A signature batches when every input and output has a known rank of at
    least one and an unknown (-1) first dimension, and the request's inputs
    agree on it: then running it in slices and concatenating the outputs gives
    what one call gives.
    """
    infos = list(signature_def.inputs.values()) + list(
        signature_def.outputs.values())
    for info in infos:
        dims = _signature_shape(info)
        if not dims or dims[0] != -1:
            return None
    sizes = {array.shape[0] if np.ndim(array) else None
             for array in inputs.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


def _available_signatures(servable) -> str:
    names = sorted(n for n in servable.signature_defs if n in servable.functions)
    return ', '.join(names) or 'none'


def serialized_examples(input_proto) -> List[bytes]:
    """Serialized Examples of a tensorflow.serving.Input proto.

    With a context, each example is the context followed by the example, as
    TF Serving serializes ExampleListWithContext.

    Raises:
      ServingError: INVALID_ARGUMENT for an empty input.
    """
    kind = input_proto.WhichOneof('kind')
    if kind == 'example_list':
        examples = [e.SerializeToString()
                    for e in input_proto.example_list.examples]
    elif kind == 'example_list_with_context':
        context = input_proto.example_list_with_context.context
        prefix = context.SerializeToString()
        examples = [prefix + e.SerializeToString()
                    for e in input_proto.example_list_with_context.examples]
    else:
        raise errors.invalid_argument('Input is empty').with_hint(
            'set input.example_list.examples.')
    if not examples:
        raise errors.invalid_argument('Input is empty').with_hint(
            'send at least one example.')
    return examples


def arrays_from_tensor_protos(protos: Mapping[str, Any], signature_def,
                              limits: limits_lib.Limits) -> Dict[str, np.ndarray]:
    """TensorProtos (gRPC, warmup) as arrays, dtypes and shapes checked first.

    Raises:
      ServingError: INVALID_ARGUMENT for a dtype that does not match the
        signature, a shape over the limits or a malformed tensor.
    """
    arrays = {}
    names = sorted(signature_def.inputs)
    for name, proto in protos.items():
        info = signature_def.inputs.get(name)
        if info is not None and proto.dtype != info.dtype:
            got, want = (json_tensor.dtype_name(proto.dtype),
                         json_tensor.dtype_name(info.dtype))
            hint = (f'input {name!r} takes {want} tensors')
            if info.dtype == json_tensor.DT_STRING:
                hint += ('; send encoded image files (JPEG/PNG/BMP/GIF) as '
                         'DT_STRING, not decoded pixel values')
            raise errors.invalid_argument(
                f'Expects arg[{names.index(name)}] to be {want} but {got} is '
                'provided').with_hint(hint + '.')
        arrays[name] = inputs_lib.array_from_tensor_proto(name, proto, limits)
    return arrays


class ServingCore:
    """Runs requests against the servables of a ModelStore.

    The store knows nothing of the core: whoever builds both (serving/server.py)
    hands the store `warmup` and `release` as its load and unload hooks.
    """

    def __init__(self, store, *, metrics=None, batcher=None,
                 request_log: Optional[request_log_lib.RequestLog] = None,
                 num_request_iterations_for_warmup: int = 0,
                 limits: Optional[limits_lib.Limits] = None):
        self.store = store
        self.metrics = metrics
        self.batcher = batcher
        self.request_log = request_log
        self.limits = limits or limits_lib.Limits()
        self.pixels = inputs_lib.PixelBudget(self.limits.max_pixels_in_flight)
        # Port name -> a check that returns None when it answers, else why not
        # (serving/server.py registers the gRPC port's).
        self.port_checks: Dict[str, Callable[[], Optional[str]]] = {}
        self._warmup_iterations = max(num_request_iterations_for_warmup, 1)

    # ------------------------------------------------------------ calls

    def begin(self, kind: str, entrypoint: str, model_name: str) -> Call:
        """Starts the bookkeeping of one request."""
        call = Call(kind, entrypoint, model_name)
        if self.request_log is not None and kind in (PREDICT, CLASSIFY,
                                                     REGRESS):
            call.sampled = self.request_log.should_sample()
        return call

    def finish(self, call: Call,
               error: Optional[errors.ServingError] = None) -> None:
        """Records a finished request in the metrics and the request log."""
        seconds = time.perf_counter() - call.started
        code = error.code if error is not None else errors.Code.OK
        call.model_name = self.model_label(call.model_name)
        if self.metrics is not None:
            self.metrics.record_request(call.model_name, call.api,
                                        call.entrypoint, code.name, seconds)
        if call.sampled and self.request_log is not None:
            try:
                self._log(call, code, error, seconds)
            except Exception:  # pylint: disable=broad-except
                logging.exception('Request log write failed')

    def model_label(self, name: str) -> str:
        """The name a request is counted and logged under.

        Names the client made up share one value, so that neither /metrics nor
        the request log grows with what clients send (TF Serving labels with
        any name it is sent).
        """
        if not name or self.store.has_model(name):
            return name
        return UNKNOWN_MODEL

    def _log(self, call: Call, code: errors.Code,
             error: Optional[errors.ServingError], seconds: float) -> None:
        images = []
        for index, data in enumerate(call.images):
            info = request_log_lib.image_info(
                data, include_bytes=self.request_log.include_image_bytes)
            label, score = (call.predictions[index]
                            if index < len(call.predictions) else (None, None))
            info['label'] = label
            info['score'] = score
            images.append(info)
        record = {
            'model': call.model_name,
            'version': call.version,
            'signature': call.signature,
            'api': call.kind,
            'entrypoint': call.entrypoint,
            'status': code.name,
            'latency_ms': round(seconds * 1e3, 3),
            'images': images,
        }
        if call.http_status is not None:
            record['http_status'] = call.http_status
        if error is not None:
            record['error'] = error.client_message
        self.request_log.write(record)

    # -------------------------------------------------------- signatures

    def _signature(self, servable, name: str, missing: Callable[[str], str],
                   code: errors.Code):
        signature_def = servable.signature_defs.get(name)
        if signature_def is None or name not in servable.functions:
            raise errors.ServingError(code, missing(name)).with_hint(
                f'available signatures: {_available_signatures(servable)}.')
        return signature_def

    def predict_signature(self, servable, signature_name: str, *,
                          entrypoint: str):
        """The SignatureDef a predict request runs.

        REST answers INVALID_ARGUMENT for an unknown name (its input map
        lookup fails first), gRPC FAILED_PRECONDITION, as TF Serving does.
        """
        name = signature_name or DEFAULT_SIGNATURE
        if entrypoint == REST:
            return name, self._signature(
                servable, name,
                lambda n: f'Serving signature name: "{n}" not found in '
                'signature def', errors.Code.INVALID_ARGUMENT)
        return name, self._signature(
            servable, name, lambda n: f'Serving signature key "{n}" not found.',
            errors.Code.FAILED_PRECONDITION)

    # ----------------------------------------------------------- predict

    def predict(self, call: Call, spec: ModelSpec, signature_name: str,
                decode: Callable[[Any], Dict[str, np.ndarray]], *,
                output_filter: Sequence[str] = ()
                ) -> Tuple[Any, str, Dict[str, np.ndarray], Any]:
        """Runs a predict request.

        Args:
          call: the request's bookkeeping.
          spec: the servable named by the request.
          signature_name: '' for serving_default.
          decode: turns the transport's payload into input arrays, given the
            SignatureDef (JSON needs the dtypes).
          output_filter: output names to return (gRPC); all if empty.

        Returns:
          (servable, signature name, outputs, decode result notes).

        Raises:
          ServingError: with TF Serving's code.
        """
        servable = self._resolve_for(call, spec)
        name, signature_def = self.predict_signature(
            servable, signature_name, entrypoint=call.entrypoint)
        call.signature = name
        started = time.perf_counter()
        decoded = decode(signature_def)
        plain_strings = set()
        if isinstance(decoded, json_tensor.PredictInputs):
            plain_strings = decoded.plain_string_inputs
            inputs = decoded.inputs
        else:
            inputs = decoded
        inputs_lib.check_instances(inputs_lib.count_instances(inputs),
                                   self.limits)
        pixels = inputs_lib.images_in_arrays(inputs, self.limits)
        if self.metrics is not None:
            self.metrics.observe_decode(servable.name, call.entrypoint,
                                        time.perf_counter() - started)
        if call.sampled:
            call.images = self._images_from_inputs(inputs)
        for alias in output_filter:
            if alias not in signature_def.outputs:
                raise errors.invalid_argument(
                    f'output tensor alias not found in signature: {alias} '
                    'Outputs expected to be in the set '
                    f'{{{",".join(sorted(signature_def.outputs))}}}.')
        if len(set(output_filter)) != len(output_filter):
            raise errors.invalid_argument(
                'duplicate output tensor alias: ' + ','.join(output_filter))
        outputs = self._run(servable, name, signature_def, inputs, call=call,
                            pixels=pixels, plain_strings=plain_strings)
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        if call.sampled:
            call.predictions = self._predictions_from_outputs(outputs)
        return servable, name, outputs, decoded

    def _images_from_inputs(self, inputs: Mapping[str, np.ndarray]
                            ) -> List[bytes]:
        for name, array in sorted(inputs.items()):
            if array.dtype == object and (
                    name == features.SERVING_INPUT
                    or name.endswith(json_tensor.BYTES_SUFFIX)):
                return [bytes(v) for v in array.reshape(-1)]
        return []

    @staticmethod
    def _predictions_from_outputs(outputs: Mapping[str, np.ndarray]):
        probabilities = outputs.get(features.PROBABILITIES_OUTPUT)
        names = outputs.get(features.CLASS_NAME_OUTPUT)
        if probabilities is None or np.ndim(probabilities) != 2:
            return []
        predictions = []
        for row, scores in enumerate(probabilities):
            best = int(np.argmax(scores))
            if names is not None and np.ndim(names) == 1:
                label = names[row]
                label = label.decode('utf-8', 'replace') if isinstance(
                    label, bytes) else str(label)
            else:
                label = str(best)
            predictions.append(
                (label, json_tensor.float32_value(scores[best])))
        return predictions

    # ------------------------------------------------- classify / regress

    def _example_signature(self, servable, signature_name: str, method: str):
        name = signature_name or DEFAULT_SIGNATURE
        signature_def = servable.signature_defs.get(name)
        if signature_def is None or name not in servable.functions:
            raise errors.invalid_argument(
                f'No signature was found with the name: {name}').with_hint(
                    self._example_signature_hint(servable, method))
        problem = self._example_signature_problem(signature_def, method)
        if problem:
            raise errors.invalid_argument(problem).with_hint(
                self._example_signature_hint(servable, method))
        return name, signature_def

    @staticmethod
    def _example_signature_problem(signature_def, method: str) -> str:
        if len(signature_def.inputs) != 1:
            return 'Expected one input Tensor.'
        if method == CLASSIFY:
            if len(signature_def.outputs) not in (1, 2):
                return ('Expected one or two output Tensors, found '
                        f'{len(signature_def.outputs)}')
            if CLASSIFY_INPUTS not in signature_def.inputs:
                return ('No classification inputs found in SignatureDef: '
                        f'inputs {sorted(signature_def.inputs)}')
            if (CLASSIFY_CLASSES not in signature_def.outputs
                    and CLASSIFY_SCORES not in signature_def.outputs):
                return ('Expected classification signature outputs to contain '
                        f'at least one of "{CLASSIFY_CLASSES}" or '
                        f'"{CLASSIFY_SCORES}". Signature outputs were: '
                        f'{sorted(signature_def.outputs)}')
            return ''
        if len(signature_def.outputs) != 1:
            return 'Expected one output Tensor.'
        if REGRESS_INPUTS not in signature_def.inputs:
            return ('No regression inputs found in SignatureDef: inputs '
                    f'{sorted(signature_def.inputs)}')
        if REGRESS_OUTPUTS not in signature_def.outputs:
            return ('No regression outputs found in SignatureDef: outputs '
                    f'{sorted(signature_def.outputs)}')
        return ''

    def _example_signature_hint(self, servable, method: str) -> str:
        fitting = sorted(
            name for name, sig in servable.signature_defs.items()
            if name in servable.functions
            and not self._example_signature_problem(sig, method))
        if fitting:
            return (f'signatures of this model that take :{method}: '
                    f'{", ".join(fitting)}; pass "signature_name".')
        return f'this model has no signature for :{method}.'

    def _resolve_for(self, call: Call, spec: ModelSpec):
        """The servable a request names; its version goes into the request's bookkeeping."""
        servable = self.store.resolve(spec.name, spec.version, spec.label)
        call.version = servable.version
        return servable

    def classify(self, call: Call, spec: ModelSpec, signature_name: str,
                 examples: Callable[[], List[bytes]]
                 ) -> Tuple[Any, str, List[List[Tuple[str, float]]]]:
        """Runs a classify request on serialized Examples.

        Returns:
          (servable, signature name, per example [(label, score), ...]).
        """
        servable = self._resolve_for(call, spec)
        return (servable,) + self._classify_on(servable, call, signature_name,
                                               examples)

    def _classify_on(self, servable, call: Optional[Call], signature_name: str,
                     examples: Callable[[], List[bytes]]):
        # The examples first, as TF Serving: a malformed body is reported
        # before an unknown signature.
        serialized, pixels = self._decode_examples(servable, call, examples)
        name, signature_def = self._example_signature(servable, signature_name,
                                                      CLASSIFY)
        if call is not None:
            call.signature = name
        outputs = self._run(servable, name, signature_def,
                            {CLASSIFY_INPUTS: serialized}, call=call,
                            pixels=pixels)
        count = len(serialized)
        classes = outputs.get(CLASSIFY_CLASSES)
        scores = outputs.get(CLASSIFY_SCORES)
        for tensor, kind, what in ((classes, 'O', 'DT_STRING'),
                                   (scores, 'f', 'DT_FLOAT')):
            if tensor is None:
                continue
            if tensor.ndim != 2:
                raise errors.invalid_argument(
                    'Expected Tensor shape: [batch_size num_classes] but got '
                    f'{_shape_string(tensor.shape)}')
            if tensor.dtype.kind != kind:
                raise errors.invalid_argument(
                    f'Expected {"classes" if kind == "O" else "scores"} Tensor '
                    f'of {what}. Got: {tensor.dtype}')
            if tensor.shape[0] != count:
                raise errors.invalid_argument(
                    f'Expected output batch size of {count}. Got: '
                    f'{tensor.shape[0]}')
        if classes is not None and scores is not None and (
                classes.shape[1] != scores.shape[1]):
            raise errors.invalid_argument(
                'Tensors class and score should match in dim_size(1). Got '
                f'{classes.shape[1]} vs. {scores.shape[1]}')
        num_classes = (classes if classes is not None else scores).shape[1]
        results = []
        for row in range(count):
            results.append([
                ((classes[row, c].decode('utf-8', 'replace')
                  if classes is not None else ''),
                 float(scores[row, c]) if scores is not None else 0.0)
                for c in range(num_classes)])
        if call is not None and call.sampled:
            call.predictions = []
            for classes_and_scores in results:
                if not classes_and_scores:
                    call.predictions.append((None, None))
                    continue
                label, score = max(classes_and_scores, key=lambda pair: pair[1])
                call.predictions.append(
                    (label, json_tensor.float32_value(score)))
        return name, results

    def regress(self, call: Call, spec: ModelSpec, signature_name: str,
                examples: Callable[[], List[bytes]]
                ) -> Tuple[Any, str, List[float]]:
        """Runs a regress request on serialized Examples.

        Returns:
          (servable, signature name, one value per example).
        """
        servable = self._resolve_for(call, spec)
        return (servable,) + self._regress_on(servable, call, signature_name,
                                              examples)

    def _regress_on(self, servable, call: Optional[Call], signature_name: str,
                    examples: Callable[[], List[bytes]]):
        # The examples first, as TF Serving: a malformed body is reported
        # before an unknown signature.
        serialized, pixels = self._decode_examples(servable, call, examples)
        name, signature_def = self._example_signature(servable, signature_name,
                                                      REGRESS)
        if call is not None:
            call.signature = name
        outputs = self._run(servable, name, signature_def,
                            {REGRESS_INPUTS: serialized}, call=call,
                            pixels=pixels)
        values = outputs[REGRESS_OUTPUTS]
        count = len(serialized)
        if values.dtype.kind != 'f':
            raise errors.invalid_argument(
                f'Expected output Tensor of DT_FLOAT. Got: {values.dtype}')
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != count:
            raise errors.invalid_argument(
                'Expected output Tensor shape to be either [batch_size] or '
                f'[batch_size, 1] but got {_shape_string(values.shape)}')
        result = [float(v) for v in values]
        if call is not None and call.sampled:
            call.predictions = [(None, v) for v in result]
        return name, result

    def multi_inference(self, call: Call, tasks: Sequence[Tuple[ModelSpec, str, str]],
                        examples: Callable[[], List[bytes]]):
        """Runs several classify/regress signatures of one model on one input.

        Args:
          call: the request's bookkeeping.
          tasks: (model spec, signature name, method name) per task, in order.
          examples: the shared serialized Examples.

        Returns:
          (servable, [(method, result) per task]): classify results as
          `classify` returns them, regress results as `regress` does.

        Raises:
          ServingError: TF Serving's code and message (RunMultiInference).
        """
        if not tasks:
            raise errors.invalid_argument('Expected at least one task')
        names = set()
        for spec, signature_name, method in tasks:
            if not spec.name:
                raise errors.invalid_argument(
                    'Found ModelSpec with an empty model name.')
            names.add(spec.name)
            if method not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise errors.ServingError(
                    errors.Code.UNIMPLEMENTED,
                    f'Unsupported signature method_name: {method}').with_hint(
                        f'a task runs {CLASSIFY_METHOD} or {REGRESS_METHOD}.')
        if len(names) > 1:
            raise errors.invalid_argument(
                'All ModelSpecs in a MultiInferenceRequest must access the same '
                'model name.')
        signatures = [signature or DEFAULT_SIGNATURE for _, signature, _ in tasks]
        for signature in signatures:
            if signatures.count(signature) > 1:
                raise errors.invalid_argument(
                    f'Duplicate evaluation of signature: {signature}')
        servable = self._resolve_for(call, tasks[0][0])
        cached = []

        def shared() -> List[bytes]:
            if not cached:
                cached.append(examples())
            return cached[0]

        results = []
        for (_, signature, method), name in zip(tasks, signatures):
            if name not in servable.signature_defs:
                raise errors.invalid_argument(
                    'Requested signature not found in model graph: '
                    f'{name}').with_hint(
                        f'available signatures: {_available_signatures(servable)}.')
            run = (self._classify_on if method == CLASSIFY_METHOD
                   else self._regress_on)
            results.append((method, run(servable, call, signature, shared)[1]))
        return servable, results

    def _decode_examples(self, servable, call: Optional[Call],
                         examples: Callable[[], List[bytes]]
                         ) -> Tuple[np.ndarray, int]:
        """(serialized Examples as an array, pixels of their images), checked."""
        started = time.perf_counter()
        serialized = examples()
        inputs_lib.check_instances(len(serialized), self.limits)
        pixels = inputs_lib.images_in_examples(serialized, self.limits)
        array = np.empty(len(serialized), dtype=object)
        array[:] = serialized
        if call is not None:
            if self.metrics is not None:
                self.metrics.observe_decode(servable.name, call.entrypoint,
                                            time.perf_counter() - started)
            if call.sampled:
                call.images = self._images_from_examples(serialized)
        return array, pixels

    @staticmethod
    def _images_from_examples(serialized: Sequence[bytes]) -> List[bytes]:
        images = []
        for data in serialized:
            example = tf.train.Example.FromString(data)
            feature = example.features.feature.get(features.IMAGE_KEY)
            if feature is None or not feature.bytes_list.value:
                return []
            images.append(feature.bytes_list.value[0])
        return images

    # --------------------------------------------------------------- run

    def _check_inputs(self, signature_name: str, signature_def,
                      inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        wanted, sent = set(signature_def.inputs), set(inputs)
        if wanted != sent:
            raise errors.invalid_argument(
                f'input size does not match signature: {len(sent)}!='
                f'{len(wanted)} len({{{",".join(sorted(sent))}}}) != '
                f'len({{{",".join(sorted(wanted))}}}). Sent extra: '
                f'{{{",".join(sorted(sent - wanted))}}}. Missing but required: '
                f'{{{",".join(sorted(wanted - sent))}}}.').with_hint(
                    f'signature {signature_name!r} takes '
                    f'{", ".join(sorted(wanted))}.')
        checked = {}
        for name, array in inputs.items():
            info = signature_def.inputs[name]
            array = np.asarray(array)
            np_dtype = json_tensor.numpy_dtype(info.dtype)
            # Serialized Examples stay strings whatever the signature declares
            # (TF Serving feeds them as DT_STRING); other inputs were checked
            # against the signature's dtype when they were decoded.
            if (array.dtype != object and np_dtype is not object
                    and array.dtype != np_dtype):
                array = array.astype(np_dtype)
            checked[name] = array
        return checked

    @staticmethod
    def _shape_error(signature_name: str, signature_def,
                     inputs: Mapping[str, np.ndarray]
                     ) -> Optional[errors.ServingError]:
        """Our message for a shape the model refused, if the signature says why.

        TF Serving checks no shapes: the tensor is fed and the model decides.
        When the model fails on an input whose shape differs from the
        signature's, that shape says what was expected (clearer than the op's
        message).
        """
        for name in sorted(inputs):
            array = inputs[name]
            info = signature_def.inputs[name]
            want = _signature_shape(info)
            if want is None or (len(want) == array.ndim and all(
                    w < 0 or w == g for w, g in zip(want, array.shape))):
                continue
            hint = ''
            if array.ndim < len(want):
                hint = (f'input {name!r} needs {len(want)} dimension(s) '
                        'with the first one over examples: send a list '
                        '(e.g. "instances": [...] or "inputs": [...]), '
                        'not a single value.')
            elif array.ndim > len(want):
                hint = (f'input {name!r} needs {len(want)} dimension(s); '
                        'the request nests one list too many.')
            return errors.invalid_argument(
                f'input {name!r} of signature {signature_name!r} expects '
                f'shape {_shape_string(want)} of '
                f'{json_tensor.dtype_name(info.dtype)}, got shape '
                f'{_shape_string(array.shape)}').with_hint(hint)
        return None

    def _run(self, servable, signature_name: str, signature_def,
             inputs: Mapping[str, np.ndarray], *, call: Optional[Call] = None,
             pixels: int = 0, plain_strings=frozenset()
             ) -> Dict[str, np.ndarray]:
        """Runs checked inputs through the signature, in chunks, by the deadline.

        `pixels` (what the request's images cost to decode) is held in the
        server's pixel budget while the model runs.
        """
        started = time.perf_counter()
        inputs = self._check_inputs(signature_name, signature_def, inputs)
        check_seconds = time.perf_counter() - started
        if call is not None:
            call.check()
        self.pixels.acquire(pixels, call.deadline if call else None)
        try:
            return self._run_chunks(servable, signature_name, signature_def,
                                    inputs, call, check_seconds)
        except errors.ServingError as error:
            raise self._with_input_hint(error, signature_def, inputs,
                                        plain_strings) from None
        finally:
            self.pixels.release(pixels)
            if pixels >= _TRIM_AFTER_PIXELS:
                _return_freed_memory()

    def _chunk_size(self) -> int:
        size = self.limits.max_instances_per_call
        if self.batcher is not None:
            size = min(size, self.batcher.params.max_batch_size)
        return size

    def _run_chunks(self, servable, signature_name: str, signature_def,
                    inputs: Dict[str, np.ndarray], call: Optional[Call],
                    check_seconds: float) -> Dict[str, np.ndarray]:
        """The request at most --max_instances_per_call instances at a time.

        Only a signature whose inputs and outputs all batch along their first
        dimension is split; between chunks the deadline (and the client) is
        checked, so a request past its deadline stops instead of running on.
        """
        count = _batch_size(signature_def, inputs)
        step = self._chunk_size()
        if count is None or count <= step:
            return self._run_once(servable, signature_name, signature_def,
                                  inputs, call, check_seconds)
        parts = []
        for start in range(0, count, step):
            if call is not None and start:
                call.check(start, count)
            part = {name: array[start:start + step]
                    for name, array in inputs.items()}
            outputs = self._run_once(servable, signature_name, signature_def,
                                     part, call, check_seconds)
            size = min(step, count - start)
            if any(np.ndim(array) == 0 or array.shape[0] != size
                   for array in outputs.values()):
                if start == 0:   # not batch-major after all: run it whole
                    return self._run_once(servable, signature_name,
                                          signature_def, inputs, call,
                                          check_seconds)
                raise errors.internal(
                    f'Signature {signature_name!r} changed its output batch '
                    'size between chunks')
            parts.append(outputs)
        return {name: np.concatenate([part[name] for part in parts])
                for name in parts[0]}

    def _run_once(self, servable, signature_name: str, signature_def,
                  inputs: Dict[str, np.ndarray], call: Optional[Call],
                  check_seconds: float) -> Dict[str, np.ndarray]:
        if self.batcher is not None:
            outputs, queued = self.batcher.run(
                (servable.name, servable.version, signature_name,
                 id(servable)), inputs,
                lambda batch: self._call(servable, signature_name,
                                         signature_def, batch),
                model_name=servable.name,
                deadline=call.deadline if call else None)
            if self.metrics is not None:
                self.metrics.observe_preprocess(servable.name,
                                                check_seconds + queued)
            return outputs
        if self.metrics is not None:
            self.metrics.observe_preprocess(servable.name, check_seconds)
        return self._call(servable, signature_name, signature_def, inputs)

    def _call(self, servable, signature_name: str, signature_def,
              inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        started = time.perf_counter()
        runtime = metrics_lib.RUNTIME_TFLITE
        try:
            outputs = None
            if servable.tflite is not None and servable.tflite.serves(
                    signature_name):
                outputs = servable.tflite.run(signature_name, inputs)
            if outputs is None:
                runtime = metrics_lib.RUNTIME_TENSORFLOW
                outputs = self._call_saved_model(servable, signature_name,
                                                 signature_def, inputs)
        except tf.errors.OpError as error:
            refused = errors.from_tf_error(error)
            shape = (self._shape_error(signature_name, signature_def, inputs)
                     if refused.code == errors.Code.INVALID_ARGUMENT else None)
            raise (shape or refused) from None
        except (TypeError, ValueError) as error:
            # The function's own input check: a shape (or rank) it refuses.
            raise (self._shape_error(signature_name, signature_def, inputs)
                   or errors.invalid_argument(str(error))) from None
        if self.metrics is not None:
            self.metrics.observe_predict(servable.name, signature_name, runtime,
                                         time.perf_counter() - started)
        return outputs

    @staticmethod
    def _call_saved_model(servable, signature_name: str, signature_def,
                          inputs: Mapping[str, np.ndarray]
                          ) -> Dict[str, np.ndarray]:
        function = servable.functions[signature_name]
        tensors = {name: tf.constant(array, dtype=tf.string if array.dtype == object
                                     else tf.dtypes.as_dtype(
                                         signature_def.inputs[name].dtype))
                   for name, array in inputs.items()}
        return {name: tensor.numpy()
                for name, tensor in function(**tensors).items()}

    @staticmethod
    def _with_input_hint(error: errors.ServingError, signature_def,
                         inputs: Mapping[str, np.ndarray],
                         plain_strings) -> errors.ServingError:
        if error.code != errors.Code.INVALID_ARGUMENT or 'Hint:' in error.message:
            return error
        text = error.message.lower()
        if 'image' not in text and 'decode' not in text:
            return error
        names = [n for n in sorted(inputs)
                 if signature_def.inputs[n].dtype == json_tensor.DT_STRING]
        if not names:
            return error
        plain = [n for n in names if n in plain_strings]
        if plain:
            return error.with_hint(
                f'input {plain[0]!r} got a plain JSON string; binary data such '
                'as an image file must be sent as {"b64": "<base64 of the '
                'file>"}.')
        return error.with_hint(
            f'the bytes sent for input {names[0]!r} are not a whole JPEG, PNG, '
            'BMP or GIF file; send the file\'s bytes unchanged (base64 only '
            'for transport).')

    # -------------------------------------------------- metadata, status

    def metadata(self, spec: ModelSpec, metadata_fields: Sequence[str] = (
            SIGNATURE_DEF_FIELD,)):
        """A GetModelMetadataResponse with the servable's SignatureDefMap.

        Raises:
          ServingError: INVALID_ARGUMENT for unsupported fields, NOT_FOUND
            for an unknown model or version.
        """
        if not metadata_fields:
            raise errors.invalid_argument(
                'GetModelMetadataRequest must specify at least one '
                'metadata_field').with_hint('ask for "signature_def".')
        for field in metadata_fields:
            if field != SIGNATURE_DEF_FIELD:
                raise errors.invalid_argument(
                    f'Metadata field {field} is not supported').with_hint(
                        'the only field is "signature_def".')
        servable = self.store.resolve(spec.name, spec.version, spec.label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    def status(self, spec: ModelSpec):
        """A GetModelStatusResponse.

        Raises:
          ServingError: NOT_FOUND for an unknown model or version.
        """
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.store.model_status(spec.name, spec.version,
                                              spec.label):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = status.state
            entry.status.error_code = int(status.error_code)
            entry.status.error_message = status.error_message
        return response

    def readiness(self) -> Tuple[bool, Dict[str, str], Dict[str, str]]:
        """(ready, per-model reason, per-port state), for /readyz.

        Ready means every model has an AVAILABLE version and every port
        answers (REST answers this; the others are probed, see
        `port_checks`), so a probe never sends clients to a port that is not
        there yet.
        """
        ready, models = self.store.readiness()
        ports = {}
        for name, check in sorted(self.port_checks.items()):
            problem = check()
            ports[name] = problem or 'answering'
            ready = ready and problem is None
        return ready, models, ports

    # ------------------------------------------------------------ warmup

    def warmup(self, servable) -> Optional[int]:
        """Replays the version's warmup file; raises if it is corrupt."""

        def execute(log) -> None:
            kind = log.WhichOneof('log_type')
            if kind == 'predict_log':
                request = log.predict_log.request
                name, signature_def = self.predict_signature(
                    servable, request.model_spec.signature_name,
                    entrypoint=GRPC)
                inputs = arrays_from_tensor_protos(request.inputs,
                                                   signature_def, self.limits)
                self._run(servable, name, signature_def, inputs)
            elif kind == 'classify_log':
                request = log.classify_log.request
                self._classify_on(servable, None,
                                  request.model_spec.signature_name,
                                  lambda: serialized_examples(request.input))
            elif kind == 'regress_log':
                request = log.regress_log.request
                self._regress_on(servable, None,
                                 request.model_spec.signature_name,
                                 lambda: serialized_examples(request.input))
            else:
                raise errors.invalid_argument(
                    f'Unsupported log_type for warmup: {kind}')

        def on_done(status: str, count: int) -> None:
            if self.metrics is not None:
                self.metrics.record_warmup(servable.path, status, count)

        return warmup_lib.replay(servable.path, execute,
                                 iterations=self._warmup_iterations,
                                 on_done=on_done)

    def release(self, servable) -> None:
        """Closes the batching queues of a servable being unloaded."""
        if self.batcher is not None:
            self.batcher.close(lambda key: key[3] == id(servable))
