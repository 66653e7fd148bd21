"""Progress lines for people: the runner's console shows this logger's INFO records.

No TensorFlow here, so the console can import it cheaply.
"""

import logging

LOGGER_NAME = 'image_pipeline.progress'


def logger() -> logging.Logger:
    """The progress logger (one line per training epoch, for example)."""
    return logging.getLogger(LOGGER_NAME)
