"""Rollback: serve an older version (the previous one, or a named one) while the server runs.

    python -m serving_formats.rollback --config models.config --model image_classifier
    python -m serving_formats.rollback --config models.config --model image_classifier \
        --version 1700000000
    python -m serving_formats.rollback --config models.config --model image_classifier --unpin
    python -m serving_formats.rollback --config models.config --model image_classifier --show

A rollback rewrites the model config file the server polls
(`--model_config_file_poll_wait_seconds`), as TF Serving understands it: the model's
version policy becomes `specific { versions: N }` and the version label `pinned`
points at N (every other label of the model moves to N too: TF Serving refuses a
label on a version it does not serve). Nothing is deleted: newer versions stay on
disk. The `pinned` label is the record: the Pusher reads it and keeps the pin (it
still writes a new version, says that the model is pinned and how to unpin), so the
next push does not silently undo a rollback. `--unpin` removes the pin and serves
the newest version again.

With `--server_url` the target version first joins the versions served (the one
served now keeps answering), and the pin follows once the server reports the
target AVAILABLE: no request fails, on our server or the real TF Serving. Without
it both land in one write, which our server applies in the same order (it loads
the target before it unloads the others).

A server started with `--model_base_path` (no config file) always serves the newest
version: give it a config file first (docs/serving.md, Rollback).
"""

import argparse
import dataclasses
import logging
import os
import sys
from typing import Dict, List, Optional

from serving_formats import version_labels

PIN_LABEL = 'pinned'
SAVED_MODEL_FILES = ('saved_model.pb', 'saved_model.pbtxt')   # a version folder is complete


@dataclasses.dataclass(frozen=True)
class Rollback:
    """What a rollback did."""
    model_name: str
    served_before: Optional[int]
    pinned: int
    moved_labels: Dict[str, int]   # label -> the version it pointed at before


def versions_on_disk(base_path: str) -> List[int]:
    """The complete versions under a model's base path, oldest first."""
    if '://' in base_path:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        isdir, listdir, exists = tf.io.gfile.isdir, tf.io.gfile.listdir, tf.io.gfile.exists
    else:   # the command answers without TensorFlow's start-up
        isdir, listdir, exists = os.path.isdir, os.listdir, os.path.exists
    if not isdir(base_path):
        return []
    return sorted(int(name.rstrip('/')) for name in listdir(base_path)
                  if name.rstrip('/').isdigit() and any(
                      exists(os.path.join(base_path, name.rstrip('/'), f))
                      for f in SAVED_MODEL_FILES))


def served_versions(model, on_disk: List[int]) -> List[int]:
    """The versions the model's policy serves among those on disk (TF Serving's rule)."""
    policy = model.model_version_policy
    choice = policy.WhichOneof('policy_choice')
    if choice == 'all':
        return list(on_disk)
    if choice == 'specific':
        return sorted(set(policy.specific.versions) & set(on_disk))
    count = max(policy.latest.num_versions, 1) if choice == 'latest' else 1
    return sorted(on_disk)[-count:]


def pinned_version(config_path: str, model_name: str) -> Optional[int]:
    """The version a rollback pinned the model to, or None (no file, no such model, no pin)."""
    if not config_path or not version_labels.exists(config_path):
        return None
    model = version_labels.find_model(version_labels.read_config(config_path), model_name)
    if model is None or PIN_LABEL not in model.version_labels:
        return None
    return model.version_labels[PIN_LABEL]


def unpin_command(config_path: str, model_name: str) -> str:
    """The command that serves the newest version again."""
    return (f'python -m serving_formats.rollback --config {config_path} --model {model_name} '
            '--unpin')


def _model(config_path: str, model_name: str, base_path: Optional[str]):
    if base_path:
        version_labels.ensure_model(config_path, model_name, base_path)
    elif not version_labels.exists(config_path):
        raise ValueError(f'{config_path} does not exist: pass --base_path to create it with '
                         f'model {model_name!r}, then start the server with '
                         f'--model_config_file={config_path}')
    config = version_labels.read_config(config_path)
    model = version_labels.find_model(config, model_name)
    if model is None:
        names = [m.name for m in config.model_config_list.config]
        raise ValueError(f'{config_path}: no model {model_name!r} (models: {names}); pass '
                         '--base_path to add it')
    return config, model


def rollback(config_path: str, model_name: str, version: Optional[int] = None, *,
             base_path: Optional[str] = None, server_url: Optional[str] = None,
             timeout_seconds: float = 300.0) -> Rollback:
    """Pins the model to `version` (default: the newest one older than what serves now).

    Args:
      config_path: the model config file the server polls.
      model_name: the model in it.
      version: the version to serve; None: the one before the version served now.
      base_path: the model's folder of versions, to add the model to the config file
        (created if missing) when it is not there.
      server_url: the server's REST root: the pin is written only once the target is
        AVAILABLE there, and the version served until then keeps serving.
      timeout_seconds: how long to wait for that.

    Returns:
      What changed.

    Raises:
      ValueError: no such model, file or version, or no older version.
      TimeoutError: the target did not become AVAILABLE (it was added to the served
        versions; the pin was not written, so the version served before still serves).
    """
    config, model = _model(config_path, model_name, base_path)
    on_disk = versions_on_disk(model.base_path)
    serving = served_versions(model, on_disk)
    current = model.version_labels.get(PIN_LABEL, max(serving) if serving else None)
    if version is None:
        older = [v for v in on_disk if current is None or v < current]
        if not older:
            raise ValueError(f'{model_name}: no version older than {current} in '
                             f'{model.base_path} (versions: {on_disk})')
        version = max(older)
    elif version not in on_disk:
        raise ValueError(f'{model_name}: no complete version {version} in {model.base_path} '
                         f'(versions: {on_disk})')
    if server_url and version not in serving:
        version_labels.serve_versions(model, set(serving) | {version})
        version_labels.write_config(config_path, config)
        logging.info('%s: loading version %d beside %s; waiting for it at %s', model_name,
                     version, serving, server_url)
        version_labels.wait_until_available(server_url, model_name, version,
                                            timeout_seconds=timeout_seconds)
        config, model = _model(config_path, model_name, None)
    moved = {label: old for label, old in model.version_labels.items()
             if label != PIN_LABEL and old != version}
    version_labels.serve_versions(model, [version])
    for label in list(model.version_labels):
        model.version_labels[label] = version
    model.version_labels[PIN_LABEL] = version
    version_labels.write_config(config_path, config)
    return Rollback(model_name, current, version, moved)


def unpin(config_path: str, model_name: str) -> Optional[int]:
    """Removes the pin: the newest version serves again (with the model's other labels'
    versions, if it has labels). Returns the newest version (None: none on disk).

    Raises:
      ValueError: no such file or model.
    """
    config, model = _model(config_path, model_name, None)
    on_disk = versions_on_disk(model.base_path)
    newest = max(on_disk) if on_disk else None
    if PIN_LABEL in model.version_labels:
        del model.version_labels[PIN_LABEL]
    if model.version_labels:
        version_labels.serve_versions(model, set(model.version_labels.values()) | ({newest} if newest else set()))
    else:
        model.ClearField('model_version_policy')   # TF Serving's default: the newest
    version_labels.write_config(config_path, config)
    return newest


def describe(config_path: str, model_name: str) -> str:
    """One line: what is served, whether it is pinned, the versions on disk."""
    _, model = _model(config_path, model_name, None)
    on_disk = versions_on_disk(model.base_path)
    serving = served_versions(model, on_disk)
    pinned = model.version_labels.get(PIN_LABEL)
    state = (f'pinned to version {pinned} (undo: {unpin_command(config_path, model_name)})'
             if pinned is not None else 'not pinned: the newest version serves')
    labels = ', '.join(f'{k}={v}' for k, v in sorted(model.version_labels.items())
                       if k != PIN_LABEL)
    return (f'{model_name}: serving {serving or "nothing"}; {state}; versions on disk: '
            f'{on_disk}' + (f'; labels: {labels}' if labels else ''))


def main(argv: Optional[List[str]] = None) -> int:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(prog='python -m serving_formats.rollback',
                                     description=__doc__.split('\n', 1)[0])
    parser.add_argument('--config', required=True,
                        help='The model config file the server polls (--model_config_file).')
    parser.add_argument('--model', required=True, help='Model name.')
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument('--version', type=int, default=None,
                        help='Serve this version (default: the one before the served one).')
    choice.add_argument('--unpin', action='store_true', help='Serve the newest version again.')
    choice.add_argument('--show', action='store_true', help='Say what is served; change nothing.')
    parser.add_argument('--base_path', default=None,
                        help="The model's folder of versions: adds the model to the config "
                             'file (created if missing).')
    parser.add_argument('--server_url', default=None,
                        help='REST root of the server: pin only once the version is AVAILABLE.')
    parser.add_argument('--timeout_seconds', type=float, default=300.0)
    args = parser.parse_args(argv)

    def run():
        if args.unpin:
            newest = unpin(args.config, args.model)
            print(f'{args.model}: unpinned; serving the newest version, {newest}')
        elif not args.show:
            done = rollback(args.config, args.model, args.version, base_path=args.base_path,
                            server_url=args.server_url, timeout_seconds=args.timeout_seconds)
            moved = ''.join(f'; label {label} moved from {old}'
                            for label, old in sorted(done.moved_labels.items()))
            print(f'{args.model}: rolled back to version {done.pinned} (was '
                  f'{done.served_before}){moved}; pinned: new pushes are written but not '
                  f'served until {unpin_command(args.config, args.model)}')
        print(describe(args.config, args.model))

    return version_labels.run_command(run)


if __name__ == '__main__':
    sys.exit(main())
