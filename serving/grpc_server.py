"""TF Serving's gRPC API (PredictionService, ModelService) on the shared path.

Uses the stubs of `tensorflow-serving-api`, so any TF Serving client works:
Predict, Classify, Regress and GetModelMetadata of
`tensorflow.serving.PredictionService`, and GetModelStatus and
HandleReloadConfigRequest of `tensorflow.serving.ModelService`.
`model_spec.version` and `model_spec.version_label` route as in TF Serving.
MultiInference answers UNIMPLEMENTED.
"""

import concurrent.futures
import logging
from typing import Callable

import grpc
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from serving import core as core_lib
from serving import errors


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


class _Handler:
    """Runs one RPC with the core's bookkeeping and status mapping."""

    def __init__(self, core: core_lib.ServingCore):
        self.core = core

    def run(self, kind: str, model_name: str, context,
            body: Callable[[core_lib.Call], object]):
        call = self.core.begin(kind, core_lib.GRPC, model_name)
        try:
            response = body(call)
        except errors.ServingError as error:
            self.core.finish(call, error)
            context.abort(grpc.StatusCode[error.code.name], error.message)
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
                    request.inputs, signature_def),
                output_filter=list(request.output_filter))
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, servable, name)
            for alias, array in outputs.items():
                response.outputs[alias].CopyFrom(tf.make_tensor_proto(array))
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

    def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            response = self._core.metadata(model_spec_of(request.model_spec),
                                           list(request.metadata_field))
            call.version = response.model_spec.version.value
            return response
        return self._handler.run(core_lib.METADATA, request.model_spec.name,
                                 context, body)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def __init__(self, core: core_lib.ServingCore):
        self._handler = _Handler(core)
        self._core = core

    def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
        return self._handler.run(
            core_lib.STATUS, request.model_spec.name, context,
            lambda call: self._core.status(model_spec_of(request.model_spec)))

    def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
        def body(call):
            try:
                self._core.store.apply_config(request.config)
            except ValueError as error:
                raise errors.invalid_argument(str(error)) from None
            response = model_management_pb2.ReloadConfigResponse()
            response.status.error_code = 0
            return response
        return self._handler.run(core_lib.STATUS, '', context, body)


class GrpcServer:
    """The gRPC server of one model server process."""

    def __init__(self, core: core_lib.ServingCore, *, host: str = '127.0.0.1',
                 port: int = 8500, max_workers: int = 8,
                 max_message_bytes: int = 32 * 2**20):
        if max_workers <= 0:
            raise ValueError(f'max_workers must be > 0, got {max_workers}')
        self.core = core
        self.host = host
        self.port = port
        self._max_workers = max_workers
        self._max_message_bytes = max_message_bytes
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
            ModelService(self.core), self._server)
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

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Refuses new RPCs, waits up to `grace_seconds` for running ones."""
        if self._server is not None:
            self._server.stop(grace_seconds).wait()
