"""TF Serving's gRPC API (PredictionService, ModelService) on the shared path.

Uses the stubs of `tensorflow-serving-api`, so any TF Serving client works:
Predict, Classify, Regress, GetModelMetadata and
MultiInference (several classify/regress signatures of one model on one
input) and GetModelStatus and HandleReloadConfigRequest of
`tensorflow.serving.ModelService`. `model_spec.version` and
`model_spec.version_label` route as in TF Serving. Output tensors fill the
typed fields (float_val, int64_val, string_val, ...), as TF Serving's
AsProtoField does, so that clients reading `.float_val` work.
"""

import concurrent.futures
import logging
import os
import threading
import time
from typing import Callable, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from serving import core as core_lib
from serving import errors
from serving import limits as limits_lib


def model_spec_of(proto) -> core_lib.ModelSpec:
    """A tensorflow.serving.ModelSpec as the core's ModelSpec."""
    choice = proto.WhichOneof('version_choice')
    version = proto.version.value if choice == 'version' else None
    label = proto.version_label if choice == 'version_label' else None
    return core_lib.ModelSpec(proto.name, version, label)


def _fill_spec(target, servable, signature_name: str) -> None:
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature_name


def tensor_proto(array: np.ndarray):
    """An output array as a TensorProto with typed fields (not tensor_content)."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    flat = array.reshape(-1)
    if array.dtype == object or array.dtype.kind in ('S', 'U'):
        proto.dtype = tf.string.as_datatype_enum
        proto.string_val.extend(
            value.encode('utf-8') if isinstance(value, str) else bytes(value)
            for value in flat)
        return proto
    dtype = tf.dtypes.as_dtype(array.dtype)
    proto.dtype = dtype.as_datatype_enum
    if dtype in (tf.float16, tf.bfloat16):
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif dtype in (tf.complex64, tf.complex128):
        field = proto.scomplex_val if dtype == tf.complex64 else proto.dcomplex_val
        field.extend(np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist())
    else:
        field = _TYPED_FIELDS.get(dtype)
        if field is None:
            return tf.make_tensor_proto(array)
        getattr(proto, field).extend(flat.tolist())
    return proto


# What the /readyz probe calls (GrpcServer.problem): a method no service has.
PROBE_METHOD = '/tensorflow.serving.ReadinessProbe/NoSuchMethod'
# dtype -> the TensorProto field TF Serving's AsProtoField fills.
_TYPED_FIELDS = {
    tf.float32: 'float_val', tf.float64: 'double_val', tf.int32: 'int_val',
    tf.int16: 'int_val', tf.int8: 'int_val', tf.uint8: 'int_val',
    tf.uint16: 'int_val', tf.int64: 'int64_val', tf.uint32: 'uint32_val',
    tf.uint64: 'uint64_val', tf.bool: 'bool_val',
}


class _Handler:
    """Runs one RPC with the core's bookkeeping and status mapping."""

    def __init__(self, core: core_lib.ServingCore):
        self.core = core

    def run(self, kind: str, model_name: str, context,
            body: Callable[[core_lib.Call], object]):
        call = self.core.begin(kind, core_lib.GRPC, model_name)
        # The client's deadline is the request's (TF Serving passes it into the
        # model run); the work also stops when the client cancels.
        remaining = context.time_remaining()
        if remaining is not None:
            call.deadline = time.monotonic() + remaining
        call.cancelled = lambda: not context.is_active()
        try:
            response = body(call)
        except errors.ServingError as error:
            self.core.finish(call, error)
            context.abort(grpc.StatusCode[error.code.name], error.client_message)
        except Exception:  # pylint: disable=broad-except
            logging.exception('gRPC %s failed', kind)
            error = errors.internal('Internal error')
            self.core.finish(call, error)
            context.abort(grpc.StatusCode.INTERNAL, error.message)
        self.core.finish(call)
        return response


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def __init__(self, core: core_lib.ServingCore):
        self._handler = _Handler(core)
        self._core = core

    def Predict(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            servable, name, outputs, _ = self._core.predict(
                call, model_spec_of(request.model_spec),
                request.model_spec.signature_name,
                lambda signature_def: core_lib.arrays_from_tensor_protos(
                    request.inputs, signature_def, self._core.limits),
                output_filter=list(request.output_filter))
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, servable, name)
            for alias, array in outputs.items():
                response.outputs[alias].CopyFrom(tensor_proto(array))
            return response
        return self._handler.run(core_lib.PREDICT, request.model_spec.name,
                                 context, body)

    def Classify(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            servable, name, results = self._core.classify(
                call, model_spec_of(request.model_spec),
                request.model_spec.signature_name,
                lambda: core_lib.serialized_examples(request.input))
            response = classification_pb2.ClassificationResponse()
            _fill_spec(response.model_spec, servable, name)
            for classes in results:
                classifications = response.result.classifications.add()
                for label, score in classes:
                    classifications.classes.add(label=label, score=score)
            return response
        return self._handler.run(core_lib.CLASSIFY, request.model_spec.name,
                                 context, body)

    def Regress(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            servable, name, values = self._core.regress(
                call, model_spec_of(request.model_spec),
                request.model_spec.signature_name,
                lambda: core_lib.serialized_examples(request.input))
            response = regression_pb2.RegressionResponse()
            _fill_spec(response.model_spec, servable, name)
            for value in values:
                response.result.regressions.add(value=value)
            return response
        return self._handler.run(core_lib.REGRESS, request.model_spec.name,
                                 context, body)

    def MultiInference(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            tasks = [(model_spec_of(task.model_spec),
                      task.model_spec.signature_name, task.method_name)
                     for task in request.tasks]
            servable, results = self._core.multi_inference(
                call, tasks, lambda: core_lib.serialized_examples(request.input))
            response = inference_pb2.MultiInferenceResponse()
            for task, (method, values) in zip(request.tasks, results):
                result = response.results.add()
                _fill_spec(result.model_spec, servable,
                           task.model_spec.signature_name)
                result.model_spec.name = task.model_spec.name
                if method == core_lib.CLASSIFY_METHOD:
                    for classes in values:
                        classifications = (
                            result.classification_result.classifications.add())
                        for label, score in classes:
                            classifications.classes.add(label=label, score=score)
                else:
                    for value in values:
                        result.regression_result.regressions.add(value=value)
            return response
        name = request.tasks[0].model_spec.name if request.tasks else ''
        return self._handler.run(core_lib.MULTI_INFERENCE, name, context, body)

    def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            response = self._core.metadata(model_spec_of(request.model_spec),
                                           list(request.metadata_field))
            call.version = response.model_spec.version.value
            return response
        return self._handler.run(core_lib.METADATA, request.model_spec.name,
                                 context, body)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService.

    HandleReloadConfigRequest may point models only at directories under the
    allowed roots (--model_base_path_roots; by default the parents of the
    start-up config's base paths): any client that reaches the port could
    otherwise make the server read any directory.
    """

    def __init__(self, core: core_lib.ServingCore,
                 allowed_roots: Sequence[str] = ()):
        self._handler = _Handler(core)
        self._core = core
        self._allowed_roots = tuple(allowed_roots)

    def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
        return self._handler.run(
            core_lib.STATUS, request.model_spec.name, context,
            lambda call: self._core.status(model_spec_of(request.model_spec)))

    def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            self._check_roots(request.config)
            try:
                self._core.store.apply_config(request.config)
            except ValueError as error:
                raise errors.invalid_argument(str(error)) from None
            response = model_management_pb2.ReloadConfigResponse()
            response.status.error_code = 0
            return response
        return self._handler.run(core_lib.STATUS, '', context, body)

    def _check_roots(self, config) -> None:
        roots = self._allowed_roots
        for model in config.model_config_list.config:
            path = model.base_path
            if '://' not in path and not os.path.isabs(path):
                raise errors.invalid_argument(
                    f'base_path {path!r} of model {model.name!r} is not an '
                    'absolute path').with_hint(
                        'give the model directory\'s absolute path.')
            if limits_lib.outside_roots(path, roots):
                raise errors.ServingError(
                    errors.Code.PERMISSION_DENIED,
                    f'base_path {path!r} of model {model.name!r} is outside the '
                    f'allowed model roots: {", ".join(roots) or "none"}'
                ).with_hint('publish the model under one of them, or start the '
                            'server with --model_base_path_roots.')


class GrpcServer:
    """The gRPC server of one model server process."""

    def __init__(self, core: core_lib.ServingCore, *, host: str = '127.0.0.1',
                 port: int = 8500, max_workers: int = 8,
                 allowed_roots: Sequence[str] = ()):
        if max_workers <= 0:
            raise ValueError(f'max_workers must be > 0, got {max_workers}')
        self.core = core
        self.host = host
        self.port = port
        self._max_workers = max_workers
        self._max_message_bytes = core.limits.grpc_max_message_bytes
        self._allowed_roots = tuple(allowed_roots)
        self._probe = None
        self._probe_lock = threading.Lock()
        self._stopped = False
        self._server = None

    def start(self) -> int:
        """Binds and starts; returns the bound port.

        Raises:
          RuntimeError: if the address cannot be bound.
        """
        options = [('grpc.max_receive_message_length', self._max_message_bytes),
                   ('grpc.max_send_message_length', self._max_message_bytes),
                   ('grpc.so_reuseport', 0)]
        self._server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix='grpc'),
            options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.core), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelService(self.core, self._allowed_roots), self._server)
        host = f'[{self.host}]' if ':' in self.host else self.host
        try:
            port = self._server.add_insecure_port(f'{host}:{self.port}')
        except RuntimeError as error:
            raise RuntimeError(f'Cannot bind gRPC to {host}:{self.port}: '
                               f'{error}') from None
        if port == 0:
            raise RuntimeError(f'Cannot bind gRPC to {host}:{self.port}')
        self._server.start()
        self.port = port
        return port

    def problem(self, timeout: float = 1.0) -> Optional[str]:
        """None when the port answers a gRPC call, else why not.

        The probe, for /readyz, is a call of PROBE_METHOD, which no service
        has, on a channel of the server's own to its address (the loopback one
        when it binds all interfaces): gRPC itself answers it UNIMPLEMENTED
        once the port takes calls, without running any of the services. A call
        rather than grpc.channel_ready_future: that one leaves gRPC's
        connectivity-polling thread running after it, which raised "Channel
        closed!" there when the server stopped right after two probes, and
        answered READY from a closed channel's last state.
        """
        if self._server is None:
            return 'not started'
        host = {'0.0.0.0': '127.0.0.1', '': '127.0.0.1', '::': '::1'}.get(
            self.host, self.host)
        target = f'[{host}]:{self.port}' if ':' in host else f'{host}:{self.port}'
        with self._probe_lock:
            if self._stopped:
                return f'no gRPC answer from {target}: the server stopped'
            if self._probe is None:
                self._probe = grpc.insecure_channel(target)
            probe = self._probe
        try:
            probe.unary_unary(PROBE_METHOD)(b'', timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            return (f'no gRPC answer from {target} within {timeout:g} s '
                    f'({error.code().name})')
        return None

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Refuses new RPCs, waits up to `grace_seconds` for running ones."""
        with self._probe_lock:
            self._stopped = True
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()
        if self._server is not None:
            self._server.stop(grace_seconds).wait()
