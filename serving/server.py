"""Entry point: `python -m serving.server`, with TF Serving's flag names.

    python -m serving.server --model_name=cats_dogs \\
        --model_base_path=/path/to/pushed/cats_dogs --rest_api_port=8501

or, for several models, version labels and config polling:

    python -m serving.server --model_config_file=models.config \\
        --model_config_file_poll_wait_seconds=10

The ports open first and the models load in the background; `/readyz`
answers 503 until every model has an AVAILABLE version (after warmup), as
probes expect. Both ports bind 127.0.0.1 unless `--rest_api_host` /
`--grpc_host` say otherwise. SIGTERM or SIGINT stop accepting, let running
requests finish and exit 0.

TF Serving flags accepted (same meaning): --port, --rest_api_port,
--rest_api_num_threads, --rest_api_timeout_in_ms, --model_name,
--model_base_path, --model_config_file, --model_config_file_poll_wait_seconds,
--file_system_poll_wait_seconds, --enable_batching, --batching_parameters_file,
--allow_version_labels_for_unavailable_models, --enable_model_warmup,
--num_request_iterations_for_warmup, --max_num_load_retries,
--load_retry_interval_micros, --grpc_max_threads, --monitoring_config_file,
--prefer_tflite_model, --num_tflite_pools,
--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism.
A zero --port or --rest_api_port disables that API, as in TF Serving; unlike
TF Serving, --rest_api_port defaults to 8501 (the docker image's port).
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from typing import List, Optional

from runlog import noise
from serving import limits


# TensorFlow's switch from its oneDNN memory pool to malloc
# (--tensorflow_system_allocator).
ONEDNN_SYSTEM_ALLOCATOR = 'TF_ONEDNN_USE_SYSTEM_ALLOCATOR'


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ('1', 'true', 'yes', 't', 'y'):
        return True
    if value in ('0', 'false', 'no', 'f', 'n'):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


def _add_bool(parser: argparse.ArgumentParser, name: str, default: bool,
              help_text: str) -> None:
    parser.add_argument(f'--{name}', type=_bool, nargs='?', const=True,
                        default=default, metavar='BOOL', help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with TF Serving's flag names and ours."""
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog='python -m serving.server',
        description='Serves SavedModels over TF Serving\'s REST and gRPC APIs.')
    tf_serving = parser.add_argument_group('TF Serving flags')
    tf_serving.add_argument('--port', type=int, default=8500,
                            help='gRPC port; 0 disables gRPC.')
    tf_serving.add_argument('--rest_api_port', type=int, default=8501,
                            help='REST port; 0 disables REST.')
    tf_serving.add_argument('--rest_api_num_threads', type=int,
                            default=4 * cpus,
                            help='Threads running REST requests.')
    tf_serving.add_argument('--grpc_max_threads', type=int, default=4 * cpus,
                            help='Threads running gRPC requests.')
    tf_serving.add_argument('--model_name', default='default',
                            help='Model name, with --model_base_path.')
    tf_serving.add_argument('--model_base_path', default='',
                            help='Directory of numeric version directories.')
    tf_serving.add_argument('--model_config_file', default='',
                            help='ModelServerConfig text proto (several '
                            'models, version policies, version_labels).')
    tf_serving.add_argument('--model_config_file_poll_wait_seconds', type=int,
                            default=0,
                            help='Re-read the config file this often; 0: '
                            'never.')
    tf_serving.add_argument('--file_system_poll_wait_seconds', type=int,
                            default=1,
                            help='Look for new versions this often; 0: once.')
    _add_bool(tf_serving, 'enable_batching', False,
              'Batch concurrent requests on the server.')
    tf_serving.add_argument('--batching_parameters_file', default='',
                            help='BatchingParameters text proto; needs '
                            '--enable_batching.')
    _add_bool(tf_serving, 'allow_version_labels_for_unavailable_models', False,
              'Allow new labels on versions that are not loaded yet.')
    _add_bool(tf_serving, 'enable_model_warmup', True,
              'Replay assets.extra/tf_serving_warmup_requests before a version '
              'becomes AVAILABLE.')
    tf_serving.add_argument('--num_request_iterations_for_warmup', type=int,
                            default=0,
                            help='Times each warmup record runs (if > 0).')
    tf_serving.add_argument('--max_num_load_retries', type=int, default=5,
                            help='Load retries after a failed load.')
    tf_serving.add_argument('--load_retry_interval_micros', type=int,
                            default=60_000_000,
                            help='Wait between load retries.')
    tf_serving.add_argument('--monitoring_config_file', default='',
                            help='MonitoringConfig text proto: its '
                            'prometheus_config.path also serves the metrics '
                            '(they are always at '
                            '/monitoring/prometheus/metrics).')
    _add_bool(tf_serving, 'prefer_tflite_model', False,
              'Answer predict from model.tflite in the version folder, where '
              'there is one (XNNPACK), for the signatures it serves; the '
              'SavedModel serves the rest and decodes the images '
              '(docs/serving.md, TFLite).')
    tf_serving.add_argument('--num_tflite_pools', type=int, default=0,
                            help='TFLite interpreters per model version, one '
                            'thread each, each running one call at a time; 0: '
                            'one per core.')
    tf_serving.add_argument('--tensorflow_intra_op_parallelism', type=int,
                            default=0, help='0: TensorFlow chooses.')
    tf_serving.add_argument('--tensorflow_inter_op_parallelism', type=int,
                            default=0, help='0: TensorFlow chooses.')
    ours = parser.add_argument_group('Flags of this server')
    ours.add_argument('--rest_api_host', default='127.0.0.1',
                      help='REST bind address (0.0.0.0 for all interfaces).')
    ours.add_argument('--grpc_host', default='127.0.0.1',
                      help='gRPC bind address.')
    ours.add_argument('--max_batch_size', type=int, default=None,
                      help='Batching: overrides the parameters file.')
    ours.add_argument('--batch_timeout_micros', type=int, default=None,
                      help='Batching: overrides the parameters file.')
    ours.add_argument('--num_batch_threads', type=int, default=None,
                      help='Batching: overrides the parameters file.')
    ours.add_argument('--max_enqueued_batches', type=int, default=None,
                      help='Batching: overrides the parameters file.')
    ours.add_argument('--request_log_file', default='',
                      help='Write a JSON-lines request log here (off if '
                      'empty).')
    ours.add_argument('--request_log_sample_rate', type=float, default=1.0,
                      help='Fraction of requests logged, in [0, 1].')
    ours.add_argument('--request_log_seed', type=int, default=None,
                      help='Seed of the request log sampler.')
    ours.add_argument('--request_log_max_bytes', type=int, default=100 * 2**20,
                      help='Rotate the request log at this size.')
    ours.add_argument('--request_log_backup_count', type=int, default=5,
                      help='Rotated request logs kept.')
    _add_bool(ours, 'request_log_include_image_bytes', False,
              'Also log each image\'s bytes (base64). Off by default.')
    ours.add_argument('--shutdown_grace_seconds', type=float, default=10.0,
                      help='Time running requests get on SIGTERM.')
    _add_bool(ours, 'tensorflow_system_allocator', False,
              'Allocate tensors with malloc instead of TensorFlow\'s oneDNN '
              'pool, which keeps its peak: memory comes back after a burst of '
              'large images, at a cost in speed (docs/serving.md, Limits).')
    ours.add_argument('--log_level', default='INFO',
                      choices=('DEBUG', 'INFO', 'WARNING', 'ERROR'))
    limits.add_flags(parser)
    return parser


def _validate(args: argparse.Namespace) -> None:
    if bool(args.model_base_path) == bool(args.model_config_file):
        raise ValueError('Set exactly one of --model_base_path (with '
                         '--model_name) and --model_config_file; got '
                         f'model_base_path={args.model_base_path!r}, '
                         f'model_config_file={args.model_config_file!r}')
    if args.port == 0 and args.rest_api_port == 0:
        raise ValueError('At least one of --port and --rest_api_port must be '
                         'non-zero')
    if args.port and args.port == args.rest_api_port:
        raise ValueError(f'--rest_api_port ({args.rest_api_port}) must differ '
                         f'from --port ({args.port})')
    if args.num_tflite_pools < 0:
        raise ValueError(f'--num_tflite_pools must be >= 0, got '
                         f'{args.num_tflite_pools}')
    if args.batching_parameters_file and not args.enable_batching:
        raise ValueError('--batching_parameters_file is set without '
                         '--enable_batching')
    limits.from_args(args)


class ModelServer:
    """One server process: store, core, transports and their shutdown."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.limits = limits.from_args(args)
        self.allowed_roots = ()
        self.store = None
        self.core = None
        self.rest = None
        self.grpc = None
        self.batcher = None
        self.request_log = None
        self.fatal = threading.Event()
        self.stopping = asyncio.Event()

    def build(self) -> None:
        """Creates everything; TensorFlow is imported here, not at import."""
        args = self.args
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from PIL import Image  # pylint: disable=import-outside-toplevel
        from serving import batching  # pylint: disable=import-outside-toplevel
        from serving import core  # pylint: disable=import-outside-toplevel
        from serving import metrics  # pylint: disable=import-outside-toplevel
        from serving import model_store  # pylint: disable=import-outside-toplevel
        from serving import request_log  # pylint: disable=import-outside-toplevel

        if args.tensorflow_intra_op_parallelism > 0:
            tf.config.threading.set_intra_op_parallelism_threads(
                args.tensorflow_intra_op_parallelism)
        if args.tensorflow_inter_op_parallelism > 0:
            tf.config.threading.set_inter_op_parallelism_threads(
                args.tensorflow_inter_op_parallelism)
        # Pillow refuses to open headers above 2 x MAX_IMAGE_PIXELS; our own cap
        # decides, so Pillow's must not be lower.
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS,
                                     self.limits.max_image_pixels)
        server_metrics = metrics.ServingMetrics()
        if args.enable_batching:
            params = (batching.read_batching_parameters(
                args.batching_parameters_file)
                      if args.batching_parameters_file
                      else batching.BatchingParameters())
            overrides = {k: getattr(args, k) for k in (
                'max_batch_size', 'batch_timeout_micros', 'num_batch_threads',
                'max_enqueued_batches') if getattr(args, k) is not None}
            if overrides:
                import dataclasses  # pylint: disable=import-outside-toplevel
                params = dataclasses.replace(params, **overrides)
            logging.info('Batching enabled: %s', params)
            self.batcher = batching.Batcher(params, metrics=server_metrics)
        if args.request_log_file:
            self.request_log = request_log.RequestLog(
                args.request_log_file, sample_rate=args.request_log_sample_rate,
                seed=args.request_log_seed,
                max_bytes=args.request_log_max_bytes,
                backup_count=args.request_log_backup_count,
                include_image_bytes=args.request_log_include_image_bytes)
            logging.info('Request log: %s (sample rate %s)',
                         args.request_log_file, args.request_log_sample_rate)
        # The store loads and unloads versions, the core runs requests on them: the
        # store's hooks call the core, which is built next (the hooks run later).
        self.store = model_store.ModelStore(
            metrics=server_metrics,
            max_num_load_retries=args.max_num_load_retries,
            load_retry_interval_micros=args.load_retry_interval_micros,
            allow_version_labels_for_unavailable_models=(
                args.allow_version_labels_for_unavailable_models),
            warmup=((lambda servable: self.core.warmup(servable))
                    if args.enable_model_warmup else None),
            on_unload=lambda servable: self.core.release(servable),
            prefer_tflite_model=args.prefer_tflite_model,
            num_tflite_pools=args.num_tflite_pools)
        self.core = core.ServingCore(
            self.store, metrics=server_metrics, batcher=self.batcher,
            request_log=self.request_log,
            num_request_iterations_for_warmup=(
                args.num_request_iterations_for_warmup),
            limits=self.limits)

    def read_config(self):
        """The ModelServerConfig from the flags."""
        from serving import model_store  # pylint: disable=import-outside-toplevel
        if self.args.model_config_file:
            config = model_store.read_config_file(self.args.model_config_file)
        else:
            config = model_store.single_model_config(self.args.model_name,
                                                     self.args.model_base_path)
        self.allowed_roots = self.limits.allowed_roots(config)
        return config

    def metrics_paths(self) -> List[str]:
        """Where REST serves the metrics: ours, and the monitoring config's.

        Raises:
          ValueError: for a monitoring config file that does not parse.
        """
        from serving import metrics  # pylint: disable=import-outside-toplevel
        from serving import rest  # pylint: disable=import-outside-toplevel
        paths = [rest.METRICS_PATH]
        if self.args.monitoring_config_file:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel
            try:
                with tf.io.gfile.GFile(self.args.monitoring_config_file,
                                       'r') as handle:
                    text = handle.read()
            except tf.errors.OpError as error:
                raise ValueError(f'Cannot read --monitoring_config_file: '
                                 f'{error.message}') from None
            path = metrics.read_monitoring_config(text, rest.METRICS_PATH)
            if path and path not in paths:
                paths.append(path)
        return paths

    def start_transports(self) -> None:
        """Binds gRPC and REST and logs where they listen."""
        args = self.args
        from serving import grpc_server  # pylint: disable=import-outside-toplevel
        from serving import rest  # pylint: disable=import-outside-toplevel
        if args.port:
            self.grpc = grpc_server.GrpcServer(
                self.core, host=args.grpc_host, port=args.port,
                max_workers=args.grpc_max_threads,
                allowed_roots=self.allowed_roots)
            port = self.grpc.start()
            self.core.port_checks['grpc'] = self.grpc.problem
            logging.info('Running gRPC ModelServer at %s:%d ...',
                         args.grpc_host, port)
        if args.rest_api_port:
            self.rest = rest.RestServer(
                self.core, host=args.rest_api_host, port=args.rest_api_port,
                num_threads=args.rest_api_num_threads,
                metrics_paths=self.metrics_paths())
            port = self.rest.start()
            logging.info('Exporting HTTP/REST API at:%s:%d ...',
                         args.rest_api_host, port)

    def load_models(self, config, loop: asyncio.AbstractEventLoop) -> None:
        """Initial load (background thread), then the pollers."""
        from serving import errors  # pylint: disable=import-outside-toplevel
        try:
            self.store.apply_config(config, initial=True)
        except errors.ServingError as error:
            logging.error('Failed to start server. Error: %s',
                          error.status_string())
            self.fatal.set()
            loop.call_soon_threadsafe(self.stopping.set)
            return
        except Exception:  # pylint: disable=broad-except
            logging.exception('Failed to load the models')
            self.fatal.set()
            loop.call_soon_threadsafe(self.stopping.set)
            return
        self.store.start_polling(
            self.args.file_system_poll_wait_seconds,
            config_path=self.args.model_config_file or None,
            config_poll_wait_seconds=(
                self.args.model_config_file_poll_wait_seconds))

    async def shutdown(self) -> None:
        """Stops the transports (with grace), unloads, closes logs."""
        grace = self.args.shutdown_grace_seconds
        logging.info('Shutting down (grace %.1fs)', grace)
        loop = asyncio.get_running_loop()
        stops = []
        if self.grpc is not None:
            stops.append(loop.run_in_executor(None, self.grpc.stop, grace))
        if self.rest is not None:
            stops.append(self.rest.stop())
        if stops:
            try:
                await asyncio.wait_for(asyncio.gather(*stops), grace + 5)
            except asyncio.TimeoutError:
                logging.warning('Requests still running after %.1fs', grace)
        if self.store is not None:
            await loop.run_in_executor(None, self.store.stop)
        if self.batcher is not None:
            self.batcher.shutdown()
        if self.request_log is not None:
            self.request_log.close()
        logging.info('Server stopped')


async def _serve(args: argparse.Namespace) -> int:
    server = ModelServer(args)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.stopping.set)
    server.build()
    config = server.read_config()
    server.start_transports()
    loader = threading.Thread(target=server.load_models, args=(config, loop),
                              name='initial-load', daemon=True)
    loader.start()
    await server.stopping.wait()
    await server.shutdown()
    return 1 if server.fatal.is_set() else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Parses flags, serves until SIGTERM/SIGINT; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format='%(asctime)s.%(msecs)03d %(levelname)s %(threadName)s] '
        '%(message)s', datefmt='%Y-%m-%d %H:%M:%S', stream=sys.stderr)
    # What the format above does not show is not gathered for each record (the access
    # log writes one per request): the caller's file and line, the process and its
    # multiprocessing name (the logging module's documented switches).
    logging._srcfile = None  # pylint: disable=protected-access
    logging.logProcesses = False
    logging.logMultiprocessing = False
    try:
        _validate(args)
    except ValueError as error:
        parser.error(str(error))
    if args.tensorflow_system_allocator:
        # Read once, when TensorFlow creates its CPU allocator: before import.
        os.environ[ONEDNN_SYSTEM_ALLOCATOR] = '1'
    # TensorFlow's C++ INFO and WARNING lines (e.g. "Local rendezvous is aborting"
    # at the end of every tf.data read) would drown the server's own log; its
    # errors still show. Import noise and third-party warnings are left out too.
    noise.quiet_tensorflow()
    try:
        return asyncio.run(_serve(args))
    except (ValueError, OSError, RuntimeError) as error:
        logging.error('Failed to start server. Error: %s', error)
        return 1


if __name__ == '__main__':
    EXIT_CODE = main()
    # shutdown() has stopped the transports and closed what the server writes; what is
    # left is the interpreter tearing down TensorFlow's objects one by one, about 1.2 s
    # for nothing (docs/benchmarks.md: the test suite). The process ends here instead.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_CODE)  # pylint: disable=protected-access
