"""python -m serving.version_labels: canary and stable version labels (tfserving/version_labels.py).

    python -m serving.version_labels push-canary --config models.config \
        --model cats_dogs --version 1700000000 --server_url http://127.0.0.1:8501
    python -m serving.version_labels promote --config models.config --model cats_dogs
    python -m serving.version_labels show --config models.config --model cats_dogs
"""

import sys

from tfserving.version_labels import main

if __name__ == '__main__':
    sys.exit(main())
