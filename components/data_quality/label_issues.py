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
3. The confident joint: each photo whose probability of some class reaches that class's
   threshold is counted under (given class, the most probable such class). Its rows are
   calibrated to the number of photos of each given class (photos reaching no threshold
   count in proportion), which estimates how many photos labelled i are really j.
4. Prune by noise rate: for every pair of classes i != j, that many photos labelled i
   are flagged, those with the largest margin p_j - p_i; a photo whose most probable
   class is its given one is never flagged. The suggestion is the most probable class.
   The count comes from the calibrated joint, not from the photos above the thresholds
   alone: the thresholds of confident models sit high, and a flipped photo fairly sure
   of its true class may reach none (docs/data_quality.md).
5. Score = 1 - the probability of the given class (1 - self-confidence): flagged photos
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
    from scipy import linalg  # pylint: disable=import-outside-toplevel
    kept = min(dimensions, dims)
    axes = linalg.eigh(covariance, subset_by_index=[dims - kept, dims - 1])[1]
    # Largest first, contiguous: numpy multiplies by a reversed view without BLAS.
    axes = np.ascontiguousarray(axes[:, ::-1])
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


def confident_joint(probabilities: np.ndarray, labels: np.ndarray,
                    thresholds: np.ndarray) -> np.ndarray:
    """int [given class, confident class]: photos counted by their given class and the
    most probable class whose threshold they reach (photos reaching none: not counted)."""
    classes = probabilities.shape[1]
    confident = probabilities >= thresholds
    counted = confident.any(axis=1)
    best = np.where(confident, probabilities, -1.0).argmax(axis=1)
    joint = np.zeros((classes, classes), np.int64)
    np.add.at(joint, (labels[counted], best[counted]), 1)
    return joint


def calibrated(joint: np.ndarray, given_counts: np.ndarray) -> np.ndarray:
    """float [given, true]: the confident joint's rows scaled to sum to the number of
    photos of each given class: the estimated count of photos labelled i that are j."""
    rows = joint.sum(axis=1, keepdims=True)
    return np.where(rows > 0, joint / np.maximum(rows, 1) * given_counts[:, None], 0.0)


def find(probabilities: np.ndarray, labels: Sequence[int]) -> Dict[str, np.ndarray]:
    """Confident learning on out-of-fold probabilities (module docstring, 2-5).

    Returns:
      {'flagged': bool [photos], 'suggested': int [photos] (the most probable class),
      'score': float [photos] (1 - the probability of the given class), 'thresholds':
      float [classes], 'estimated': float [given, true] (the calibrated confident joint)}.
    """
    labels = np.asarray(labels, np.int64)
    classes = probabilities.shape[1]
    thresholds = per_class_thresholds(probabilities, labels)
    estimated = calibrated(confident_joint(probabilities, labels, thresholds),
                           np.bincount(labels, minlength=classes))
    flagged = np.zeros(len(labels), bool)
    for given in range(classes):
        members = np.flatnonzero(labels == given)
        for true in range(classes):
            count = int(round(estimated[given, true]))
            if true == given or not count:
                continue
            margin = probabilities[members, true] - probabilities[members, given]
            flagged[members[np.argsort(-margin, kind='stable')[:count]]] = True
    suggested = probabilities.argmax(axis=1)
    flagged &= suggested != labels
    score = 1.0 - probabilities[np.arange(len(labels)), labels]
    return {'flagged': flagged, 'suggested': suggested, 'score': score,
            'thresholds': thresholds, 'estimated': estimated}


def ranked(found: Dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the flagged photos, most suspicious (highest score) first."""
    flagged = np.flatnonzero(found['flagged'])
    return flagged[np.argsort(-found['score'][flagged], kind='stable')]
