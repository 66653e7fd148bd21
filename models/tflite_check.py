"""A converted (TFLite) model against the SavedModel it came from: its outputs on the same
images, its accuracy and agreement on the eval split, and the verdict (ready or refused).
Pure numpy: the TFLiteExport stage, the Pusher and the server's tests use it."""

import dataclasses
from typing import Mapping, Optional

import numpy as np

# A converted model is refused (not marked ready) when its accuracy on the eval images
# is lower than the SavedModel's by more than this (1 point).
MAX_ACCURACY_DROP = 0.01
# Largest difference of a float output (a probability) between the served TFLite model
# and the SavedModel on the same image; other outputs (class index, label) must be equal.
# float32 TFLite differs from TensorFlow by rounding only (docs/serving.md).
SERVING_TOLERANCE = 1e-4


def output_difference(reference: Mapping[str, np.ndarray], converted: Mapping[str, np.ndarray],
                      tolerance: float = SERVING_TOLERANCE) -> Optional[str]:
    """How a converted model's outputs differ from the SavedModel's on the same images, or
    None when they do not: the same names and shapes, floats within `tolerance`, the rest
    equal."""
    if set(reference) != set(converted):
        return f'outputs {sorted(converted)} instead of {sorted(reference)}'
    for name in sorted(reference):
        want, got = np.asarray(reference[name]), np.asarray(converted[name])
        if want.shape != got.shape:
            return f'output {name!r} has shape {list(got.shape)} instead of {list(want.shape)}'
        if np.issubdtype(want.dtype, np.floating):
            largest = float(np.max(np.abs(want - got), initial=0.0))
            if not largest <= tolerance:     # also catches NaN
                return (f'output {name!r} differs by up to {largest:.3g} (at most {tolerance:g} '
                        'allowed)')
        elif not np.array_equal(want, got):
            return f'output {name!r} differs: {got.tolist()} instead of {want.tolist()}'
    return None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A converted model against the SavedModel on the same images."""
    images: int
    reference_accuracy: float     # the SavedModel's
    accuracy: float               # the converted model's
    agreement: float              # share of images where both give the same class
    max_abs_difference: float     # largest difference of a probability

    @property
    def accuracy_drop(self) -> float:
        """Accuracy lost by the conversion (negative: gained)."""
        return self.reference_accuracy - self.accuracy


def compare(reference: np.ndarray, converted: np.ndarray, labels: np.ndarray) -> Comparison:
    """Probabilities [N, K] of the SavedModel and of a converted model, with the labels [N].

    Raises:
      ValueError: shapes that do not match, or no images.
    """
    reference, converted, labels = np.asarray(reference), np.asarray(converted), np.asarray(labels)
    if reference.shape != converted.shape or reference.shape[:1] != labels.shape or not len(labels):
        raise ValueError(f'cannot compare probabilities {reference.shape} and {converted.shape} '
                         f'with labels {labels.shape}')
    expected, answered = reference.argmax(axis=1), converted.argmax(axis=1)
    return Comparison(images=len(labels),
                      reference_accuracy=float(np.mean(expected == labels)),
                      accuracy=float(np.mean(answered == labels)),
                      agreement=float(np.mean(expected == answered)),
                      max_abs_difference=float(np.max(np.abs(reference - converted))))


def refusal(comparison: Comparison, max_accuracy_drop: float = MAX_ACCURACY_DROP) -> Optional[str]:
    """Why a converted model is not ready, or None when it is."""
    if comparison.accuracy_drop > max_accuracy_drop + 1e-9:
        return (f'accuracy {comparison.accuracy:.4f} is {comparison.accuracy_drop * 100:.1f} '
                f'points below the SavedModel\'s {comparison.reference_accuracy:.4f} on '
                f'{comparison.images} eval images (at most {max_accuracy_drop * 100:g} allowed)')
    return None


def describe(variant: str, size_bytes: int, comparison: Comparison, reason: Optional[str]) -> str:
    """One line on a converted model: size, accuracy against the SavedModel, verdict."""
    verdict = f'REFUSED: {reason}' if reason else 'ready'
    return (f'TFLite {variant}: {size_bytes / 1e6:.1f} MB, accuracy {comparison.accuracy:.4f} '
            f'vs {comparison.reference_accuracy:.4f} (SavedModel) on {comparison.images} eval '
            f'images, agreement {comparison.agreement * 100:.1f}%, largest probability '
            f'difference {comparison.max_abs_difference:.4f}: {verdict}')

