"""Server-side batching of concurrent requests, as `--enable_batching`.

Tasks (one request's input tensors) wait in a queue per model version and
signature. A batch is formed when it is full (`max_batch_size` examples) or
when its oldest task has waited `batch_timeout_micros`, and a batch thread is
free (`num_batch_threads`); the tasks' tensors are concatenated along the
first dimension, optionally padded up to the next `allowed_batch_sizes`
entry, run once, and the outputs split back. A queue holds at most
`max_enqueued_batches` batches worth of examples; past that a request fails
with UNAVAILABLE, as TF Serving's shared batch scheduler does. A task larger
than `max_batch_size` is refused (INVALID_ARGUMENT).

When a batch fails with INVALID_ARGUMENT (e.g. one request's image cannot be
decoded), its tasks are run again one by one, so only the bad request fails;
TF Serving fails the whole batch.

The parameters file is TF Serving's `BatchingParameters` text proto (e.g.
`max_batch_size { value: 128 }`); the message is built here from its
published field numbers because the pip package of tensorflow-serving-api
does not ship `session_bundle_config_pb2`.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Deque, Dict, Hashable, List, Optional, Tuple

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
import numpy as np

from serving import errors

Inputs = Dict[str, np.ndarray]
RunFn = Callable[[Inputs], Dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters with its scheduler's defaults."""
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: Tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        for field in ('max_batch_size', 'max_enqueued_batches',
                      'num_batch_threads'):
            if getattr(self, field) < 1:
                raise ValueError(f'{field} must be >= 1, got '
                                 f'{getattr(self, field)}')
        if self.batch_timeout_micros < 0:
            raise ValueError('batch_timeout_micros must be >= 0, got '
                             f'{self.batch_timeout_micros}')
        sizes = self.allowed_batch_sizes
        if sizes:
            if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
                raise ValueError('allowed_batch_sizes must be increasing and '
                                 f'positive, got {list(sizes)}')
            if sizes[-1] != self.max_batch_size:
                raise ValueError(
                    'The last entry in allowed_batch_sizes must match '
                    f'max_batch_size; last entry was {sizes[-1]}; expected '
                    f'{self.max_batch_size}')
        if self.pad_variable_length_inputs:
            raise ValueError('pad_variable_length_inputs is not supported; '
                             'requests whose non-batch shapes differ are run '
                             'in separate batches instead')


_FIELDS = (
    # name, number, wrapper type or scalar type.
    ('max_batch_size', 1, 'Int64Value'),
    ('batch_timeout_micros', 2, 'Int64Value'),
    ('max_enqueued_batches', 3, 'Int64Value'),
    ('num_batch_threads', 4, 'Int64Value'),
    ('thread_pool_name', 5, 'StringValue'),
    ('enable_large_batch_splitting', 8, 'BoolValue'),
    ('max_execution_batch_size', 9, 'Int64Value'),
)


def _batching_parameters_message():
    """tensorflow.serving.BatchingParameters, from its field numbers."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name='serving/batching_parameters.proto', package='tensorflow.serving',
        syntax='proto3', dependency=[wrappers.name])
    message = proto.message_type.add(name='BatchingParameters')
    field_type = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in _FIELDS:
        message.field.add(name=name, number=number,
                          label=field_type.LABEL_OPTIONAL,
                          type=field_type.TYPE_MESSAGE,
                          type_name=f'.google.protobuf.{wrapper}')
    message.field.add(name='allowed_batch_sizes', number=6,
                      label=field_type.LABEL_REPEATED,
                      type=field_type.TYPE_INT64)
    message.field.add(name='pad_variable_length_inputs', number=7,
                      label=field_type.LABEL_OPTIONAL,
                      type=field_type.TYPE_BOOL)
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName('tensorflow.serving.BatchingParameters')
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def parse_batching_parameters(text: str) -> BatchingParameters:
    """Parses TF Serving's batching parameters text proto.

    Raises:
      ValueError: on a parse error or bad values.
    """
    proto = _batching_parameters_message()()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        raise ValueError(f'Invalid batching parameters: {error}') from None
    kwargs = {}
    for name in ('max_batch_size', 'batch_timeout_micros',
                 'max_enqueued_batches', 'num_batch_threads'):
        if proto.HasField(name):
            kwargs[name] = getattr(proto, name).value
    if proto.HasField('enable_large_batch_splitting') and (
            proto.enable_large_batch_splitting.value):
        logging.warning('enable_large_batch_splitting is ignored: a request '
                        'larger than max_batch_size is refused')
    kwargs['allowed_batch_sizes'] = tuple(proto.allowed_batch_sizes)
    kwargs['pad_variable_length_inputs'] = proto.pad_variable_length_inputs
    return BatchingParameters(**kwargs)


def read_batching_parameters(path: str) -> BatchingParameters:
    """Reads a batching parameters file (local or gs://)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path, 'r') as handle:
        return parse_batching_parameters(handle.read())


class _Task:

    def __init__(self, inputs: Inputs, size: int,
                 deadline: Optional[float] = None):
        self.inputs = inputs
        self.size = size
        self.deadline = deadline
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.outputs: Optional[Dict[str, np.ndarray]] = None
        self.error: Optional[BaseException] = None
        self.queue_seconds = 0.0

    def layout(self) -> Tuple:
        """Tasks with equal layouts can share a batch."""
        return tuple(sorted((name, array.dtype.str, array.shape[1:])
                            for name, array in self.inputs.items()))


def _task_size(inputs: Inputs) -> int:
    sizes = set()
    for name, array in inputs.items():
        if array.ndim == 0:
            raise errors.invalid_argument(
                f'Batching requires every input to have a batch dimension; '
                f'input {name!r} is a scalar').with_hint(
                    'send a list of values (one per example).')
        sizes.add(array.shape[0])
    if len(sizes) != 1:
        raise errors.invalid_argument(
            'Batching requires all inputs to have the same first dimension, '
            f'got {sorted(sizes)}')
    return sizes.pop()


class _Queue:
    """The tasks waiting for one (model, version, signature)."""

    def __init__(self, batcher: 'Batcher', key: Hashable, run: RunFn,
                 model_name: str):
        self.key = key
        self.run = run
        self.model_name = model_name
        self._batcher = batcher
        self._params = batcher.params
        self._cond = threading.Condition()
        self._tasks: Deque[_Task] = collections.deque()
        self._queued_size = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f'batch-{key}')
        self._thread.start()

    def submit(self, task: _Task) -> None:
        params = self._params
        if task.size > params.max_batch_size:
            raise errors.invalid_argument(
                f'Task size {task.size} is larger than maximum input batch '
                f'size {params.max_batch_size}').with_hint(
                    'send fewer examples per request.')
        with self._cond:
            if self._closed:
                raise errors.unavailable('The model version is being unloaded')
            limit = params.max_batch_size * params.max_enqueued_batches
            if self._queued_size + task.size > limit:
                raise errors.unavailable(
                    'The batch scheduling queue to which this task was '
                    'submitted is full')
            self._tasks.append(task)
            self._queued_size += task.size
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        params = self._params
        timeout = params.batch_timeout_micros / 1e6
        while True:
            with self._cond:
                while not self._tasks and not self._closed:
                    self._cond.wait()
                if not self._tasks and self._closed:
                    return
                deadline = self._tasks[0].enqueued + timeout
                while (self._queued_size < params.max_batch_size
                       and not self._closed):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            # Tasks keep arriving while every batch thread is busy.
            self._batcher.slots.acquire()
            with self._cond:
                batch = self._take_batch()
            if not batch:
                self._batcher.slots.release()
                continue
            self._batcher.pool.submit(self._run_batch, batch)

    def _take_batch(self) -> List[_Task]:
        batch: List[_Task] = []
        size = 0
        layout = self._tasks[0].layout() if self._tasks else None
        kept: Deque[_Task] = collections.deque()
        while self._tasks:
            task = self._tasks.popleft()
            if (task.layout() == layout
                    and size + task.size <= self._params.max_batch_size):
                batch.append(task)
                size += task.size
            else:
                kept.append(task)
        self._tasks = kept
        self._queued_size -= size
        return batch

    def _run_batch(self, batch: List[_Task]) -> None:
        try:
            now = time.monotonic()
            for task in batch:
                task.queue_seconds = now - task.enqueued
            # A task whose deadline passed while it queued is answered, not run.
            expired = [task for task in batch
                       if task.deadline is not None and now > task.deadline]
            for task in expired:
                task.error = errors.ServingError(
                    errors.Code.DEADLINE_EXCEEDED,
                    'Deadline Exceeded while waiting in the batching queue')
            batch = [task for task in batch if task not in expired]
            if not batch:
                return
            try:
                self._run_tasks(batch)
            except errors.ServingError as error:
                if len(batch) > 1 and error.code == errors.Code.INVALID_ARGUMENT:
                    for task in batch:
                        self._run_alone(task)
                else:
                    for task in batch:
                        task.error = error
            except Exception as error:  # pylint: disable=broad-except
                for task in batch:
                    task.error = error
        finally:
            self._batcher.slots.release()
            for task in batch + expired:
                task.done.set()

    def _run_alone(self, task: _Task) -> None:
        try:
            self._run_tasks([task])
        except Exception as error:  # pylint: disable=broad-except
            task.error = error

    def _run_tasks(self, batch: List[_Task]) -> None:
        size = sum(task.size for task in batch)
        padded = size
        for allowed in self._params.allowed_batch_sizes:
            if allowed >= size:
                padded = allowed
                break
        inputs = {}
        for name in batch[0].inputs:
            parts = [task.inputs[name] for task in batch]
            if padded > size:
                first = parts[0][:1]
                parts.append(np.repeat(first, padded - size, axis=0))
            inputs[name] = np.concatenate(parts, axis=0)
        outputs = self.run(inputs)
        if self._batcher.metrics is not None:
            self._batcher.metrics.observe_batch_size(self.model_name, padded)
        for name, array in outputs.items():
            if np.ndim(array) == 0 or array.shape[0] != padded:
                raise errors.internal(
                    f'Batched output tensor {name!r} has shape '
                    f'{list(np.shape(array))}; expected first dimension '
                    f'{padded}')
        offset = 0
        for task in batch:
            task.outputs = {name: array[offset:offset + task.size]
                            for name, array in outputs.items()}
            offset += task.size


class Batcher:
    """Batches concurrent calls per key on a shared pool of batch threads."""

    def __init__(self, params: BatchingParameters, *, metrics=None):
        self.params = params
        self.metrics = metrics
        self.slots = threading.BoundedSemaphore(params.num_batch_threads)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=params.num_batch_threads,
            thread_name_prefix='batch-thread')
        self._lock = threading.Lock()
        self._queues: Dict[Hashable, _Queue] = {}

    def run(self, key: Hashable, inputs: Inputs, run: RunFn, *,
            model_name: str = '', deadline: Optional[float] = None
            ) -> Tuple[Dict[str, np.ndarray], float]:
        """Runs `inputs` as part of a batch and returns this task's outputs.

        Args:
          key: the queue, e.g. (model, version, signature).
          inputs: input arrays sharing their first (batch) dimension.
          run: runs a whole batch of inputs, returns output arrays.
          model_name: label for the batch size metric.
          deadline: time.monotonic() after which the task is not run.

        Returns:
          (outputs, seconds spent waiting in the queue).

        Raises:
          ServingError: queue full, task too large, or the run failed.
        """
        task = _Task(inputs, _task_size(inputs), deadline)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = _Queue(self, key, run, model_name)
                self._queues[key] = queue
        queue.submit(task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs, task.queue_seconds

    def close(self, predicate: Callable[[Hashable], bool]) -> None:
        """Closes the queues whose key matches (e.g. an unloaded version)."""
        with self._lock:
            keys = [key for key in self._queues if predicate(key)]
            queues = [self._queues.pop(key) for key in keys]
        for queue in queues:
            queue.close()

    def shutdown(self) -> None:
        """Closes every queue and waits for running batches."""
        self.close(lambda key: True)
        self.pool.shutdown(wait=True)
