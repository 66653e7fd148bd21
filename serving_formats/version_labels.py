"""Canary and stable version labels, by rewriting the model config file.

The server (ours, or TF Serving with `--model_config_file_poll_wait_seconds`)
re-reads the config file and moves its labels with no restart. Each rewrite
is atomic (a temporary file, then os.replace), so a poller never reads half
a file. Comments in the file are not kept.

TF Serving only assigns a label to a version that is already loaded (unless
`--allow_version_labels_for_unavailable_models` and the label is new). So a
canary push is two writes: first the new version joins the `specific`
version policy; once the server reports it AVAILABLE, the `canary` label
moves to it. Pass `server_url` to wait in between; without it both land in
one write, which our server handles (it retries labels until the version
is up) but the real TF Serving may refuse.

The CLI is `python -m serving_formats.version_labels` (push-canary, promote, set, show).
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

STABLE = 'stable'
CANARY = 'canary'


def _is_remote(path: str) -> bool:
    return '://' in path


def read_config(path: str):
    """Reads a ModelServerConfig text file.

    Raises:
      ValueError: if it does not parse.
    """
    if _is_remote(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        with tf.io.gfile.GFile(path, 'r') as handle:
            text = handle.read()
    else:
        with open(path, 'r', encoding='utf-8') as handle:
            text = handle.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f'{path}: invalid model config: {error}') from None
    return config


def write_config(path: str, config) -> None:
    """Replaces the config file in one step (temp file + rename)."""
    text = text_format.MessageToString(config)
    if _is_remote(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        temp = f'{path}.tmp-{os.getpid()}'
        with tf.io.gfile.GFile(temp, 'w') as handle:
            handle.write(text)
        tf.io.gfile.rename(temp, path, overwrite=True)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix='.models-', suffix='.config.tmp',
                                dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def find_model(config, model_name: str):
    """The model's entry in a ModelServerConfig, or None."""
    for model in config.model_config_list.config:
        if model.name == model_name:
            return model
    return None


def _model(config, model_name: str):
    model = find_model(config, model_name)
    if model is None:
        names = [m.name for m in config.model_config_list.config]
        raise ValueError(f'No model {model_name!r} in the config; models: {names}')
    return model


def exists(path: str) -> bool:
    """Whether a config file (local path or tf.io.gfile URL) exists."""
    if _is_remote(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def ensure_model(config_path: str, model_name: str, base_path: str) -> None:
    """Adds the model to the config file (creating the file) if it is not there.

    Raises:
      ValueError: the model is there with another base path.
    """
    config = (read_config(config_path) if exists(config_path)
              else model_server_config_pb2.ModelServerConfig())
    model = find_model(config, model_name)
    if model is not None:
        if model.base_path.rstrip('/') != base_path.rstrip('/'):
            raise ValueError(f'{config_path}: model {model_name!r} has base_path '
                             f'{model.base_path}, not {base_path}')
        return
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = 'tensorflow'
    write_config(config_path, config)


def labels_of(config_path: str, model_name: str) -> Dict[str, int]:
    """The model's version labels in the config file."""
    return dict(_model(read_config(config_path), model_name).version_labels)


def serve_versions(model, versions) -> None:
    """Makes the model's entry serve exactly `versions` (a `specific` version policy)."""
    policy = model.model_version_policy
    policy.Clear()
    policy.specific.versions.extend(sorted(set(versions)))


def set_label(config_path: str, model_name: str, label: str,
              version: int) -> None:
    """Points `label` at `version`, adding the version to the served ones.

    Raises:
      ValueError: for a bad label or version, or an unknown model.
    """
    if not label or not label.replace('_', '').isalnum():
        raise ValueError(f'Labels are [a-zA-Z0-9_]+, got {label!r}')
    if version < 0:
        raise ValueError(f'version must be >= 0, got {version}')
    config = read_config(config_path)
    model = _model(config, model_name)
    served = set(model.model_version_policy.specific.versions)
    serve_versions(model, served | set(model.version_labels.values()) | {version})
    model.version_labels[label] = version
    write_config(config_path, config)


def wait_until_available(server_url: str, model_name: str, version: int, *,
                         timeout_seconds: float = 300.0,
                         poll_seconds: float = 1.0) -> None:
    """Polls GET /v1/models/{name}/versions/{v} until it is AVAILABLE.

    Raises:
      TimeoutError: with the last state seen.
    """
    import requests  # pylint: disable=import-outside-toplevel
    url = f'{server_url.rstrip("/")}/v1/models/{model_name}/versions/{version}'
    deadline = time.monotonic() + timeout_seconds
    last = 'no answer'
    while True:
        try:
            response = requests.get(url, timeout=poll_seconds + 5)
            doc = response.json()
            states = doc.get('model_version_status', [])
            if states and states[0].get('state') == 'AVAILABLE':
                return
            last = (states[0] if states else doc.get('error', doc))
        except (requests.RequestException, ValueError) as error:
            last = str(error)
        if time.monotonic() > deadline:
            raise TimeoutError(f'{model_name} version {version} not AVAILABLE '
                               f'after {timeout_seconds}s; last: {last}')
        time.sleep(poll_seconds)


def push_canary(config_path: str, model_name: str, version: int, *,
                server_url: Optional[str] = None,
                timeout_seconds: float = 300.0) -> None:
    """Serves `version` beside the stable one and labels it `canary`.

    The first push of a model (no `stable` label yet) makes the version
    `stable` too.

    Args:
      config_path: the model config file the server polls.
      model_name: the model in it.
      version: the pushed version number (its directory name).
      server_url: REST root of the server; if given, the label moves only
        once the version is AVAILABLE there (what TF Serving requires).
      timeout_seconds: how long to wait for that.

    Raises:
      ValueError: for an unknown model or a bad version.
      TimeoutError: the version did not become AVAILABLE in time (the policy
        already includes it; the label did not move).
    """
    if version < 0:
        raise ValueError(f'version must be >= 0, got {version}')
    config = read_config(config_path)
    model = _model(config, model_name)
    kept = set(model.version_labels.values())
    if not kept and model.model_version_policy.WhichOneof(
            'policy_choice') == 'specific':
        kept = set(model.model_version_policy.specific.versions)
    serve_versions(model, kept | {version})
    if server_url:
        write_config(config_path, config)
        logging.info('Serving %s version %d; waiting for it at %s', model_name,
                     version, server_url)
        wait_until_available(server_url, model_name, version,
                             timeout_seconds=timeout_seconds)
        config = read_config(config_path)
        model = _model(config, model_name)
    model.version_labels[CANARY] = version
    if STABLE not in model.version_labels:
        model.version_labels[STABLE] = version
    write_config(config_path, config)
    logging.info('%s: canary -> %d (stable %d)', model_name, version,
                 model.version_labels[STABLE])


def promote_canary(config_path: str, model_name: str, *,
                   retire_previous: bool = False) -> int:
    """Moves `stable` to the canary's version; returns that version.

    Args:
      config_path: the model config file.
      model_name: the model in it.
      retire_previous: also stop serving the old stable version (if no other
        label points at it).

    Raises:
      ValueError: if the model has no canary label.
    """
    config = read_config(config_path)
    model = _model(config, model_name)
    if CANARY not in model.version_labels:
        raise ValueError(f'Model {model_name!r} has no {CANARY!r} label; '
                         f'labels: {dict(model.version_labels)}')
    canary = model.version_labels[CANARY]
    previous = model.version_labels.get(STABLE)
    model.version_labels[STABLE] = canary
    if model.model_version_policy.WhichOneof('policy_choice') == 'specific':
        versions = set(model.model_version_policy.specific.versions)
        if (retire_previous and previous is not None and previous != canary
                and previous not in model.version_labels.values()):
            versions.discard(previous)
        serve_versions(model, versions | {canary})
    write_config(config_path, config)
    logging.info('%s: stable %s -> %d', model_name, previous, canary)
    return canary


def run_command(action: Callable[[], None]) -> int:
    """Runs a command line's action (this one's, serving_formats/rollback.py's) with INFO logging:
    exit status 0, or 1 with `error: <what>` on stderr for a bad argument, file or version
    or a server that did not answer in time."""
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        action()
    except (ValueError, OSError, TimeoutError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """CLI: push-canary, promote, set, show."""
    parser = argparse.ArgumentParser(prog='python -m serving_formats.version_labels',
                                     description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for name in ('push-canary', 'promote', 'set', 'show'):
        sub = commands.add_parser(name)
        sub.add_argument('--config', required=True, help='Model config file.')
        sub.add_argument('--model', required=True, help='Model name.')
        if name in ('push-canary', 'set'):
            sub.add_argument('--version', type=int, required=True)
        if name == 'push-canary':
            sub.add_argument('--server_url', default=None,
                             help='Wait for the version here before labelling.')
            sub.add_argument('--timeout_seconds', type=float, default=300.0)
        if name == 'promote':
            sub.add_argument('--retire_previous', action='store_true')
        if name == 'set':
            sub.add_argument('--label', required=True)
    args = parser.parse_args(argv)

    def run():
        if args.command == 'push-canary':
            push_canary(args.config, args.model, args.version,
                        server_url=args.server_url,
                        timeout_seconds=args.timeout_seconds)
        elif args.command == 'promote':
            promote_canary(args.config, args.model,
                           retire_previous=args.retire_previous)
        elif args.command == 'set':
            set_label(args.config, args.model, args.label, args.version)
        print(' '.join(f'{k}={v}' for k, v in
                       sorted(labels_of(args.config, args.model).items())))

    return run_command(run)


if __name__ == '__main__':
    sys.exit(main())
