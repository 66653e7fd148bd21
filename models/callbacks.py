"""Keras callbacks light enough for any training script (tf_keras only)."""

import time
from typing import List

import tf_keras as keras


class EpochTimer(keras.callbacks.Callback):
    """Records seconds per epoch into the history."""

    def __init__(self):
        super().__init__()
        self.seconds: List[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
