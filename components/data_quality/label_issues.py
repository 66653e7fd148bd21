"""Label issues: photos whose given class the rest of the data contradicts (confident learning).

Pure numpy and scikit-learn on the frozen base's features; written here after Northcutt,
Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR
2021), not taken from cleanlab (AGPL).

1. Out-of-fold probabilities: the photos are split into stratified folds; each fold is
   predicted by a logistic regression trained on the other folds, so no photo is judged
   by a model that has seen its own label. The regressions see the features square-
   rooted, scaled to unit length and projected on their DIMENSIONS principal axes: on
   the tutorial's photos with 30 or 90 labels flipped on purpose, as many flips found
   as with all 1,280 features, in less time, and each regression holds DIMENSIONS
   floats per photo instead of 1,280.
2. Per-class thresholds: t_j = the mean probability of class j over the photos labelled
   j, how sure the model typically is of a photo that is j.
3. A photo is flagged when, among the classes whose probability reaches their own
   threshold, the most probable is not its given class (the confident joint's
   off-diagonal); that class is the suggestion. A photo reaching no threshold is not
   flagged: it is ambiguous, not confidently something else.
4. Score = 1 - the probability of the given class (1 - self-confidence): flagged photos
   are listed most suspicious first.
"""

from typing import Dict, Sequence

import numpy as np

# Folds of the out-of-fold predictions (fewer when a class has fewer photos).
FOLDS = 5
# Inverse regularisation (scikit-learn's C) of the logistic regressions on the
# power-normalised features; with 10, 90% of 30 labels flipped on purpose among the
# tutorial's 3,000 photos rank in the top 30 (docs/data_quality.md).
INVERSE_REGULARISATION = 10.0
MAX_ITERATIONS = 1000
# Principal axes the features are projected on for the regressions.
DIMENSIONS = 256
# Photos per block when reading the (memory-mapped) features.
_BLOCK = 8192


def normalised(features: np.ndarray) -> np.ndarray:
    """Square root (the pooled activations are >= 0; it evens out a few large ones),
    then unit length: what the logistic regressions see."""
    rooted = np.sqrt(np.maximum(np.asarray(features, np.float64), 0.0))
    return rooted / np.maximum(np.linalg.norm(rooted, axis=1, keepdims=True), 1e-12)


def reduced(features: np.ndarray, dimensions: int = DIMENSIONS) -> np.ndarray:
    """normalised(features), centred and projected on its `dimensions` principal axes
    (float64 [photos, dimensions]); read by blocks, so the features may be memory-mapped."""
    count, dims = features.shape
    mean, covariance = np.zeros(dims), np.zeros((dims, dims))
    for start in range(0, count, _BLOCK):
        mean += normalised(features[start:start + _BLOCK]).sum(axis=0)
    mean /= max(count, 1)
    for start in range(0, count, _BLOCK):
        block = normalised(features[start:start + _BLOCK]) - mean
        covariance += block.T @ block
    axes = np.linalg.eigh(covariance)[1][:, ::-1][:, :dimensions]
    out = np.empty((count, axes.shape[1]))
    for start in range(0, count, _BLOCK):
        out[start:start + _BLOCK] = (normalised(features[start:start + _BLOCK]) - mean) @ axes
    return out


def folds_for(labels: np.ndarray) -> int:
    """FOLDS, or fewer so that every class has a photo in every fold (at least 2)."""
    counts = np.bincount(labels)
    smallest = counts[counts > 0].min() if counts.any() else 0
    return int(max(2, min(FOLDS, smallest)))


def out_of_fold_probabilities(features: np.ndarray, labels: Sequence[int], classes: int,
                              *, seed: int = 0) -> np.ndarray:
    """[photos, classes]: each photo's class probabilities from a model that did not see it.

    Raises:
      ValueError: fewer than two photos of a class that has any.
    """
    from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
    from sklearn.model_selection import StratifiedKFold  # pylint: disable=import-outside-toplevel
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=classes)
    if (counts == 1).any():
        raise ValueError(f'classes {np.flatnonzero(counts == 1).tolist()} have a single photo: '
                         'out-of-fold predictions need at least two')
    x = reduced(features)
    probabilities = np.zeros((len(labels), classes))
    splitter = StratifiedKFold(folds_for(labels), shuffle=True, random_state=seed)
    for train, held_out in splitter.split(x, labels):
        model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=MAX_ITERATIONS)
        model.fit(x[train], labels[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(x[held_out])
    return probabilities


def per_class_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j: the mean probability of class j over the photos labelled j (1.0 for a class
    without photos: nothing reaches it)."""
    return np.array([probabilities[labels == j, j].mean() if (labels == j).any() else 1.0
                     for j in range(probabilities.shape[1])])


def find(probabilities: np.ndarray, labels: Sequence[int]) -> Dict[str, np.ndarray]:
    """Confident learning on out-of-fold probabilities.

    Returns:
      {'flagged': bool [photos], 'suggested': int [photos] (the confident class, or the
      most probable one where none is confident), 'score': float [photos] (1 - the
      probability of the given class), 'thresholds': float [classes]}.
    """
    labels = np.asarray(labels, np.int64)
    thresholds = per_class_thresholds(probabilities, labels)
    confident = probabilities >= thresholds
    best_confident = np.where(confident, probabilities, -1.0).argmax(axis=1)
    flagged = confident.any(axis=1) & (best_confident != labels)
    suggested = np.where(confident.any(axis=1), best_confident, probabilities.argmax(axis=1))
    score = 1.0 - probabilities[np.arange(len(labels)), labels]
    return {'flagged': flagged, 'suggested': suggested, 'score': score,
            'thresholds': thresholds}


def ranked(found: Dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the flagged photos, most suspicious (highest score) first."""
    flagged = np.flatnonzero(found['flagged'])
    return flagged[np.argsort(-found['score'][flagged], kind='stable')]
