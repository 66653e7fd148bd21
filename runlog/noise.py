"""Known noise of the libraries we run on, filtered where it starts.

- Python warnings from third-party modules that say nothing about the user's
  run (Google client libraries on Python 3.11, deprecations inside TF, TFX,
  Beam), ignored by category and by the module that raises them; every other
  warning, ours included, still shows.
- TensorFlow's native start-up lines on a machine without a GPU (CUDA plugin
  registration, TensorRT, cuda drivers, CPU instruction notes): `import
  tensorflow` runs with its stderr captured, and every other line it wrote is
  passed on unchanged.
"""

import os
import re
import sys
import tempfile
import warnings

NOISY_WARNINGS = (
    (FutureWarning, r'google(\..*)?$'),
    (DeprecationWarning, r'(tensorflow|tf_keras|keras|tfx|tfx_bsl|tensorflow_[a-z_]+|'
                         r'apache_beam|google|pkg_resources)(\..*)?$'),
    (UserWarning, r'(tensorflow_model_analysis|tfx|apache_beam)(\..*)?$'),
)

# Lines TensorFlow's native code writes at import on a CPU-only machine.
NATIVE_NOISE = re.compile(
    r'Unable to register cu(FFT|DNN|BLAS) factory|TF-TRT Warning: Could not find TensorRT|'
    r'Could not find cuda drivers on your machine|oneDNN custom operations are on|'
    r'This TensorFlow binary is optimized to use available CPU instructions|'
    r'To enable the following instructions: .* in other operations, rebuild TensorFlow')


def filter_noisy_warnings() -> None:
    """Ignores NOISY_WARNINGS where they are raised; every other warning stays."""
    for category, module in NOISY_WARNINGS:
        warnings.filterwarnings('ignore', category=category, module=module)


def import_tensorflow() -> None:
    """Imports TensorFlow with its native start-up noise left out of stderr.

    Does nothing when TensorFlow is already imported. Lines that are not
    NATIVE_NOISE are written to stderr afterwards, in order.
    """
    if 'tensorflow' in sys.modules:
        return
    filter_noisy_warnings()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors='replace').splitlines(True)
                    if not NATIVE_NOISE.search(line)]
            if kept:
                sys.stderr.write(''.join(kept))
                sys.stderr.flush()


def quiet_tensorflow() -> None:
    """For scripts: TensorFlow's C++ INFO/WARNING lines off, imported without its noise,
    and its Python logger's deprecation notices (raised inside TFMA, TFT, TFX) off."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import_tensorflow()
    import logging  # pylint: disable=import-outside-toplevel
    logging.getLogger('tensorflow').setLevel(logging.ERROR)


def quiet_logs(verbose: bool) -> None:
    """For scripts without a Console: absl and Python logging at WARNING, TensorFlow
    imported without its noise (everything, at INFO, when verbose)."""
    import logging  # pylint: disable=import-outside-toplevel
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        quiet_tensorflow()
