"""The lock installs with --no-deps; every installed package's declared requirements still hold."""

import subprocess
import sys

from google.protobuf.internal import api_implementation


def test_installed_packages_satisfy_each_others_requirements():
    result = subprocess.run([sys.executable, '-m', 'pip', 'check', '--disable-pip-version-check'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_protobuf_runs_its_compiled_implementation():
    # The pure-Python one makes TFDV, TFMA and MLMD several times slower.
    assert api_implementation.Type() == 'upb'
