"""Fixtures of the monitoring tests."""

import pytest


@pytest.fixture(scope='session')
def pushed_version(small_run) -> str:
    """The version directory the shared pipeline run pushed (with its reference profile)."""
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    _, run = small_run
    return mlmd_runs.custom_property(run.output('ImagePusher', 'pushed_model'),
                                     'pushed_destination')
