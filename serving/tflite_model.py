"""--prefer_tflite_model: predict answered from the version's model.tflite (XNNPACK).

TF Serving's flag loads `model.tflite` instead of the SavedModel when the version
folder has one. Ours loads both: the SavedModel still gives the metadata, the status,
classify, regress and every signature the TFLite model does not serve, and computes
the TFLite model's input, because decoding an image cannot be written with TFLite's
built-in ops. For `serving_default` (the Pusher's model.tflite, see
models/tflite_export.py):

    image bytes --[TensorFlow: the SavedModel's transform_features signature: decode,
    upright, resize, scale]--> float32 pixels --[TFLite on XNNPACK: the model, softmax,
    class index, label]--> the SavedModel's outputs

A SavedModel signature is served from TFLite when model.tflite has a signature of the
same name whose outputs are the SavedModel signature's (names and dtypes) and whose
one input is an output of the SavedModel's transform_features signature, while the
SavedModel signature takes one string input (the encoded images). At load, the two
are run on a probe image through every interpreter; a model.tflite that does not load,
fits no signature or answers otherwise than the SavedModel is not used (logged), and
the version is served from the SavedModel as without the flag.

String outputs: a string tensor is dynamic-sized in TFLite, and the XNNPACK delegate takes
a graph only when none of its tensors is (TFLite logs "Attempting to use a delegate that
only supports static-sized tensors ..." and runs every op on its builtin kernels, about
twice as slow). The Pusher's model ends in GATHER(class names, class index) for `label`:
`split_string_lookups` takes such a lookup out of the model before the interpreters load
it (the operator, its output and the signature's output) and does it in numpy after each
invoke, from the same table (the constant the model holds) and the same index output. The
model's numbers are unchanged; the probe check below compares the whole answer.

Decoding: one transform_features call decodes the images of every call waiting for it
at that moment (at most DECODE_BATCH_IMAGES), made by whichever of them came first while
no decode ran; the others wait and get their rows. A decode starts once at most
`pool_size` decoded images wait for an interpreter: the interpreters are the slow part,
and decoding further ahead would decode alone calls that could share the next decode.
The graph decodes each image on its own (a map over the images), so the pixels are those
of one call per request; what the calls share is TensorFlow's cost per call. When a
shared decode fails (an image the graph refuses), each call's images are decoded again
on their own, so that only the call that sent the bad image gets the error.

Threads: a pool of `pool_size` interpreters, each with one thread (as TF Serving's
TfLiteSession: one thread each keeps them from contending), each used by one call at a
time; calls beyond the pool wait for an interpreter. A call runs its images one at a
time (batch 1: no tensor reallocation between requests of different sizes).
"""

import dataclasses
import logging
import os
import queue
import threading
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.lite.python import schema_util as tflite_schema_util
from tensorflow.lite.tools import flatbuffer_utils

from models import features
from models import tflite_check
from models import tflite_export

# Images decoded together at most, in one transform_features call.
DECODE_BATCH_IMAGES = 16
# numpy dtype kind of a SignatureDef dtype, for the outputs' check.
_KINDS = {tf.float32.as_datatype_enum: 'f', tf.int64.as_datatype_enum: 'i',
          tf.string.as_datatype_enum: 'O'}


@dataclasses.dataclass(frozen=True)
class StringLookup:
    """A string output computed as GATHER(constant table, another output) along axis 0."""
    index_output: str      # the signature's output holding the indices
    table: np.ndarray      # object array of bytes, the model's constant

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        """The table's values at `indices`, as the model's GATHER gives them."""
        indices = np.asarray(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self.table)):
            raise RuntimeError(f'output {self.index_output!r} holds an index outside the '
                               f'{len(self.table)} values it looks up')
        return self.table[indices]


def _string_table(data) -> np.ndarray:
    """The values of a constant TFLite string tensor: int32 count, count + 1 int32 offsets
    from the buffer's start, then the bytes."""
    raw = np.asarray(data, np.uint8).tobytes()
    count = int(np.frombuffer(raw, '<i4', 1)[0])
    offsets = np.frombuffer(raw, '<i4', count + 1, 4)
    table = np.empty(count, object)
    table[:] = [raw[offsets[i]:offsets[i + 1]] for i in range(count)]
    return table


def split_string_lookups(content: bytes) -> Tuple[bytes, Dict[str, Dict[str, StringLookup]]]:
    """(the model without its string-table lookups, {signature: {output: lookup}}).

    An output is taken out when it is a STRING tensor made by a GATHER (axis 0, no batch
    dims) of a constant 1-D string tensor by a tensor that is another output of the same
    signature, and nothing else reads it. Without such outputs, or when the content does
    not parse (the interpreter then says why it does not load), it is returned as it is
    (and {}).
    """
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
        if any(buffer.offset for buffer in model.buffers or []):
            return content, {}   # weights outside the flatbuffer: left as they are
        found = _take_lookups(model)
    except Exception:  # pylint: disable=broad-except
        return content, {}
    if not found:
        return content, {}
    return flatbuffer_utils.convert_object_to_bytearray(model), found


def _take_lookups(model) -> Dict[str, Dict[str, StringLookup]]:
    """Takes the lookups out of the model object; returns them."""
    found: Dict[str, Dict[str, StringLookup]] = {}
    signatures = model.signatureDefs or []
    for signature in signatures:
        if sum(s.subgraphIndex == signature.subgraphIndex for s in signatures) > 1:
            continue             # a graph two signatures share: left as it is
        key = signature.signatureKey.decode()
        graph = model.subgraphs[signature.subgraphIndex]
        by_tensor = {m.tensorIndex: m.name.decode() for m in signature.outputs}
        for mapping in list(signature.outputs):
            lookup = _lookup(model, graph, mapping.tensorIndex, by_tensor)
            if lookup is None:
                continue
            operator, lookup = lookup
            graph.operators.remove(operator)
            graph.outputs = [t for t in graph.outputs if t != mapping.tensorIndex]
            signature.outputs.remove(mapping)
            found.setdefault(key, {})[mapping.name.decode()] = lookup
    return found


def _lookup(model, graph, tensor_index: int, outputs: Mapping[int, str]):
    """(operator, StringLookup) when the tensor is such a lookup, else None."""
    if graph.tensors[tensor_index].type != tflite_schema.TensorType.STRING:
        return None
    makers = [op for op in graph.operators if tensor_index in list(op.outputs)]
    readers = [op for op in graph.operators if tensor_index in list(op.inputs)]
    if len(makers) != 1 or readers or list(makers[0].outputs) != [tensor_index]:
        return None
    operator = makers[0]
    code = tflite_schema_util.get_builtin_code_from_operator_code(
        model.operatorCodes[operator.opcodeIndex])
    options = operator.builtinOptions
    if (code != tflite_schema.BuiltinOperator.GATHER or len(operator.inputs) != 2
            or (options is not None and (options.axis or options.batchDims))):
        return None
    table_index, index_index = (int(i) for i in operator.inputs)
    table = graph.tensors[table_index]
    buffer = model.buffers[table.buffer] if table.buffer else None
    if (index_index not in outputs or table.type != tflite_schema.TensorType.STRING
            or buffer is None or buffer.data is None or len(list(table.shape)) != 1):
        return None
    return operator, StringLookup(outputs[index_index], _string_table(buffer.data))


def default_pool_size() -> int:
    """Interpreters per model version when --num_tflite_pools is 0: one per core."""
    return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one SavedModel signature runs on TFLite."""
    images_input: str      # the SavedModel signature's input (encoded images)
    pixels_input: str      # the TFLite signature's input: a transform_features output
    lookups: Mapping[str, StringLookup]   # outputs computed after the invoke


class _Decode:
    """One call's images, then its transform_features outputs (or its error)."""

    def __init__(self, images: List[bytes]):
        self.images = images
        self.outputs: Optional[Dict[str, np.ndarray]] = None
        self.error: Optional[Exception] = None
        self.lead = False          # handed the next shared decode
        self.ready = threading.Event()


class SharedDecoder:
    """`decode` (transform_features) for the images of the calls waiting at that moment
    (see the module docstring)."""

    def __init__(self, decode: Callable[[List[bytes]], Dict[str, np.ndarray]], ahead: int,
                 max_images: int = DECODE_BATCH_IMAGES):
        """Args: decode: images -> outputs by name, each batch-major; ahead: decoded
        images waiting for an interpreter at most when a decode starts."""
        self._decode_images = decode
        self._max_images = max_images
        self._ahead = ahead
        self._lock = threading.Lock()
        self._waiting: List[_Decode] = []
        self._running = False
        self._decoded = 0          # decoded images not yet taken by an interpreter
        self._fewer = threading.Condition(self._lock)

    def taken(self, count: int) -> None:
        """`count` decoded images went to an interpreter (or were dropped)."""
        with self._lock:
            self._decoded -= count
            self._fewer.notify()

    @property
    def waiting(self) -> int:
        """Calls waiting for a decode."""
        with self._lock:
            return len(self._waiting)

    def outputs(self, images: List[bytes]) -> Dict[str, np.ndarray]:
        """The transform_features outputs of `images`.

        Raises:
          tf.errors.OpError: an image of `images` the graph cannot decode.
        """
        mine = _Decode(images)
        with self._lock:
            self._waiting.append(mine)
            lead = not self._running
            self._running = True
        if not lead:
            mine.ready.wait()
        if mine.lead or lead:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.outputs

    def _lead(self) -> None:
        """Decodes the first waiting calls (this one among them), then hands the lead to
        the next waiting one, if any."""
        with self._lock:
            self._fewer.wait_for(lambda: self._decoded <= self._ahead)
            taken, count = [], 0
            while self._waiting and (not taken or count + len(
                    self._waiting[0].images) <= self._max_images):
                taken.append(self._waiting.pop(0))
                count += len(taken[-1].images)
        try:
            self._decode(taken)
        finally:
            for decode in taken:
                if decode.outputs is None and decode.error is None:
                    decode.error = RuntimeError('the shared decode stopped')
            with self._lock:
                self._decoded += sum(len(d.images) for d in taken if d.outputs is not None)
                if self._waiting:
                    self._waiting[0].lead = True
                    self._waiting[0].ready.set()
                else:
                    self._running = False
            for decode in taken:
                decode.ready.set()

    def _decode(self, taken: List[_Decode]) -> None:
        images = [image for decode in taken for image in decode.images]
        try:
            outputs = self._decode_images(images)
        except Exception as error:  # pylint: disable=broad-except
            if len(taken) == 1:
                taken[0].error = error
                return
            for decode in taken:   # each on its own: the error goes to its sender only
                self._decode([decode])
            return
        start = 0
        for decode in taken:
            stop = start + len(decode.images)
            decode.outputs = {name: value[start:stop] if np.ndim(value) and len(value) == len(
                images) else value for name, value in outputs.items()}
            start = stop


class ServedInterpreter(tflite_export.Runner):
    """A Runner (one thread unless told) that answers a signature one image per invoke, and when the
    signature is the model's only graph with float32 input and outputs of batch 1 (the
    Pusher's model, its string lookups split off), without a SignatureRunner: the input
    set, the graph invoked and the outputs read by tensor index, as the SignatureRunner
    does after its resize and allocation (which change nothing at batch 1). The same
    numbers; about 0.15 ms less per image. Not thread-safe, as Runner."""

    def __init__(self, model_content: bytes, threads: int = 1):
        super().__init__(model_content, threads=threads)
        self._direct: Dict[str, Optional[tuple]] = {}

    def _direct_io(self, key: str) -> Optional[tuple]:
        """(input index, input shape, [(output name, index)]) of the direct path, or None."""
        interpreter = self._interpreter
        inputs, outputs = self.signature_details(key)
        primary_in = interpreter.get_input_details()
        primary_out = {d['index'] for d in interpreter.get_output_details()}
        if (list(interpreter.get_signature_list()) != [key] or len(inputs) != 1
                or len(primary_in) != 1 or any(d['dtype'] == np.bytes_ for d in
                                               interpreter.get_output_details())):
            return None
        (details,) = inputs.values()
        if (details['index'] != primary_in[0]['index'] or details['dtype'] != np.float32
                or details['quantization'][0] or primary_in[0]['shape'][0] != 1):
            return None
        for output in outputs.values():
            if (output['index'] not in primary_out or output['quantization'][0]
                    or (np.issubdtype(output['dtype'], np.floating)
                        and output['dtype'] != np.float32)):
                return None
        return (details['index'], tuple(primary_in[0]['shape'][1:]),
                [(name, output['index']) for name, output in outputs.items()])

    def direct(self, key: str) -> bool:
        """Whether `run_images` on this signature takes the direct path."""
        return self._direct_plan(key) is not None

    def _direct_plan(self, key: str) -> Optional[tuple]:
        if key not in self._direct:
            self._direct[key] = self._direct_io(key)
        return self._direct[key]

    def run_images(self, key: str, input_name: str, pixels: np.ndarray
                   ) -> Dict[str, np.ndarray]:
        """As tflite_export.run_one_by_one(self, key, input_name, pixels)."""
        direct = self._direct_plan(key)
        if (direct is None or pixels.dtype != np.float32 or not len(pixels)
                or pixels.shape[1:] != direct[1]):
            return tflite_export.run_one_by_one(self, key, input_name, pixels)
        index, _, outputs = direct
        interpreter = self._interpreter
        rows = []
        for row in range(len(pixels)):
            interpreter.set_tensor(index, pixels[row:row + 1])
            interpreter.invoke()
            rows.append({name: interpreter.get_tensor(tensor) for name, tensor in outputs})
        if len(rows) == 1:
            return rows[0]
        return {name: np.concatenate([row[name] for row in rows]) for name, _ in outputs}


class TfLiteModel:
    """A version's model.tflite: the signatures it serves and its interpreters."""

    def __init__(self, runners: List[ServedInterpreter], plans: Dict[str, _Plan],
                 transform):
        self._plans = plans
        self.decoder = SharedDecoder(
            lambda images: tflite_export.transformed_images(transform, images), len(runners))
        self._idle: 'queue.Queue[ServedInterpreter]' = queue.Queue()
        for runner in runners:
            self._idle.put(runner)
        self.pool_size = len(runners)

    @property
    def signatures(self) -> List[str]:
        """The SavedModel signatures answered from TFLite."""
        return sorted(self._plans)

    def serves(self, signature_name: str) -> bool:
        """Whether predict on this signature runs on TFLite."""
        return signature_name in self._plans

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]
            ) -> Optional[Dict[str, np.ndarray]]:
        """The signature's outputs, or None when the inputs are not a batch of images
        (the SavedModel then runs them and gives its own answer or error).

        Raises:
          tf.errors.OpError: an image the Transform graph cannot decode (as the
            SavedModel would raise it).
        """
        plan = self._plans[signature_name]
        images = inputs.get(plan.images_input)
        if (len(inputs) != 1 or images is None or images.dtype != object
                or images.ndim != 1 or not len(images)):
            return None
        decoded = self.decoder.outputs(list(images))
        try:
            pixels = decoded[plan.pixels_input]
            runner = self._idle.get()
        finally:
            self.decoder.taken(len(images))
        try:
            outputs = runner.run_images(signature_name, plan.pixels_input, pixels)
        finally:
            self._idle.put(runner)
        for name, lookup in plan.lookups.items():
            outputs[name] = lookup(outputs[lookup.index_output])
        return outputs


def _plan(name: str, signature_def, transform_def, runner: ServedInterpreter,
          lookups: Mapping[str, StringLookup]) -> Tuple[Optional[_Plan], str]:
    """(plan, '') when TFLite can serve the SavedModel signature, else (None, why not)."""
    inputs, outputs = runner.signature_details(name)
    outputs = dict(outputs, **{output: {'quantization': (0.0, 0), 'dtype': np.bytes_}
                               for output in lookups})
    if len(signature_def.inputs) != 1:
        return None, 'the SavedModel signature takes more than one input'
    (images_input, info), = signature_def.inputs.items()
    if info.dtype != tf.string.as_datatype_enum:
        return None, f'its input {images_input!r} is not a string (encoded images)'
    if len(inputs) != 1:
        return None, f'the TFLite signature takes {len(inputs)} inputs, not one'
    (pixels_input,) = inputs
    if pixels_input not in transform_def.outputs:
        return None, (f'the TFLite input {pixels_input!r} is not an output of '
                      f'{features.TRANSFORM_SIGNATURE} '
                      f'({", ".join(sorted(transform_def.outputs))})')
    if set(outputs) != set(signature_def.outputs):
        return None, (f'TFLite outputs {sorted(outputs)}, the SavedModel '
                      f'{sorted(signature_def.outputs)}')
    for output, info in signature_def.outputs.items():
        details = outputs[output]
        # As Runner returns them: quantized outputs dequantized to float, bytes as objects.
        kind = ('f' if details['quantization'][0] else
                {'S': 'O'}.get(np.dtype(details['dtype']).kind, np.dtype(details['dtype']).kind))
        if _KINDS.get(info.dtype) != kind:
            return None, f'output {output!r} has another dtype than the SavedModel\'s'
    return _Plan(images_input, pixels_input, dict(lookups)), ''


def load(path: str, signature_defs: Mapping[str, object], functions: Mapping[str, object],
         pool_size: int = 0) -> Optional[TfLiteModel]:
    """The version's model.tflite, ready to serve, or None (logged why) when it is not
    to be used.

    Args:
      path: the version folder (model.tflite beside saved_model.pb).
      signature_defs: the SavedModel's SignatureDefs by name.
      functions: the SavedModel's signature functions by name.
      pool_size: interpreters (one thread each); 0: one per core.
    """
    file = os.path.join(path, tflite_export.SERVING_FILE)
    transform_def = signature_defs.get(features.TRANSFORM_SIGNATURE)
    if transform_def is None or features.TRANSFORM_SIGNATURE not in functions:
        logging.warning('%s not used: the SavedModel has no %s signature to compute its '
                        'input with', file, features.TRANSFORM_SIGNATURE)
        return None
    try:
        with tf.io.gfile.GFile(file, 'rb') as handle:
            content, lookups = split_string_lookups(handle.read())
        runners = [ServedInterpreter(content) for _ in range(pool_size or default_pool_size())]
        plans, skipped = {}, {}
        for name in sorted(runners[0].signatures()):
            if name not in signature_defs or name not in functions:
                skipped[name] = 'the SavedModel has no signature of that name'
                continue
            plan, why = _plan(name, signature_defs[name], transform_def, runners[0],
                              lookups.get(name, {}))
            if plan is None:
                skipped[name] = why
            else:
                plans[name] = plan
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        logging.warning('%s not used: it does not load: %s', file, error)
        return None
    for name, why in skipped.items():
        logging.warning('%s: signature %s served from the SavedModel: %s', file, name, why)
    if not plans:
        logging.warning('%s not used: none of its signatures fits the SavedModel\'s', file)
        return None
    model = TfLiteModel(runners, plans, functions[features.TRANSFORM_SIGNATURE])
    problem = _check(model, plans, functions)
    if problem:
        logging.warning('%s not used: %s', file, problem)
        return None
    looked_up = sorted(f'{name}.{output}' for name in plans for output in plans[name].lookups)
    logging.info('%s serves predict on %s (%d interpreters, XNNPACK%s); the SavedModel '
                 'serves the rest', file, ', '.join(model.signatures), model.pool_size,
                 f'; string outputs {", ".join(looked_up)} looked up after the invoke'
                 if looked_up else '')
    return model


def _check(model: TfLiteModel, plans: Mapping[str, _Plan],
           functions: Mapping[str, object]) -> Optional[str]:
    """Why the TFLite answers differ from the SavedModel's on the probe image, through
    every interpreter; None when they agree."""
    image = tflite_export.probe_image()
    for name, plan in plans.items():
        reference = {key: value.numpy() for key, value in functions[name](
            **{plan.images_input: tf.constant([image])}).items()}
        for _ in range(model.pool_size):
            # Each run takes the interpreter that has waited longest: all of them in turn.
            try:
                answers = model.run(name, {plan.images_input: np.array([image], object)})
            except (ValueError, RuntimeError, tf.errors.OpError) as error:
                return f'signature {name} fails on a probe image: {error}'
            if answers is None:
                return f'signature {name} does not take a probe image'
            difference = tflite_check.output_difference(reference, answers)
            if difference:
                return (f'signature {name} does not answer as the SavedModel on a probe '
                        f'image: {difference}')
    return None
