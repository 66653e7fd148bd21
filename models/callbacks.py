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


class BestEpoch(keras.callbacks.EarlyStopping):
    """Early stopping on the eval loss that counts the weights the model starts the fit
    with as an epoch already seen: it ends with the weights of the epoch with the lowest
    eval loss, those starting weights included, and stops after `patience` epochs
    without a lower one (0: runs every epoch).

    Args:
      start_loss: the eval loss of the starting weights.
      start_epoch: the epoch (0-based) that gave them.
      patience: epochs without a lower eval loss before stopping; 0: never stop early.
    """

    def __init__(self, start_loss: float, start_epoch: int, patience: int):
        # Keras' patience counts epochs without progress; "never" is more than any fit runs.
        super().__init__(monitor='val_loss', patience=patience or 2**31 - 1,
                         restore_best_weights=True)
        self._start = (float(start_loss), int(start_epoch))

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best, self.best_epoch = self._start
        self.best_weights = self.model.get_weights()
