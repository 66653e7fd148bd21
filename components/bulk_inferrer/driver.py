"""Driver of BulkInferrer: a fingerprint of the folder to score, before the cache check.

The folder is a path parameter, so without this a run after photos were added,
removed or replaced would reuse the cached scores of the old ones. The driver lists
the folder as the executor will (files.walk) and adds (path, size, mtime) of every
entry, hashed, as an execution property: any change re-runs the component.
"""

import hashlib
import os
from typing import Any, Dict

from tfx.dsl.components.base import base_driver
from tfx.orchestration import metadata
from tfx.orchestration.portable import base_driver as portable_base_driver
from tfx.orchestration.portable import data_types
from tfx.proto.orchestration import driver_output_pb2

from components.bulk_inferrer import files
from components.bulk_inferrer import spec


def folder_fingerprint(root: str) -> str:
    """Entries and a digest of (path, size, mtime in ns) of every entry under root; an
    entry that cannot be stat'ed counts as size -1."""
    digest = hashlib.sha256()
    entries = 0
    for entry in files.walk(root):
        try:
            found = os.stat(os.path.join(root, entry.path))
            size, mtime = found.st_size, found.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        entries += 1
        digest.update(os.fsencode(entry.path) + f'\0{size}\0{mtime}\n'.encode())
    return f'entries:{entries},sha256:{digest.hexdigest()}'


def _fingerprinted(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """exec_properties with the folder's fingerprint (none for a missing folder: the
    executor stops with the reason)."""
    root = exec_properties[spec.IMAGES_DIR_KEY]
    if not os.path.isdir(root):
        return dict(exec_properties)
    return {**exec_properties, spec.FOLDER_FINGERPRINT_KEY: folder_fingerprint(root)}


class Driver(base_driver.BaseDriver, portable_base_driver.BaseDriver):
    """Adds spec.FOLDER_FINGERPRINT_KEY to the execution properties, for both of TFX's
    driver interfaces (as ExampleGen's driver does): `run` for the IR-based
    orchestrators (LocalDagRunner, Kubeflow V2), `resolve_exec_properties` for the others."""

    def __init__(self, metadata_handle: metadata.Metadata):
        base_driver.BaseDriver.__init__(self, metadata_handle)
        portable_base_driver.BaseDriver.__init__(self, metadata_handle)

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        return _fingerprinted(exec_properties)

    def run(self, execution_info: data_types.ExecutionInfo) -> driver_output_pb2.DriverOutput:
        output = driver_output_pb2.DriverOutput()
        found = _fingerprinted(execution_info.exec_properties)
        if spec.FOLDER_FINGERPRINT_KEY in found:
            output.exec_properties[spec.FOLDER_FINGERPRINT_KEY].string_value = (
                found[spec.FOLDER_FINGERPRINT_KEY])
        return output
