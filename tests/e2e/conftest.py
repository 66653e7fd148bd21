"""End-to-end tests use the `small_run` fixture of tests/conftest.py; the
helpers are re-exported here for scripts that import them from this module."""

from tests.conftest import SMALL, PipelineFixture, make_run  # pylint: disable=unused-import
