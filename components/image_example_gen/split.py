"""Pure: the stratified, content-addressed split of a root without split folders.

Within each class, the unique images (by sha256 of their bytes) are ordered by
hash; the first round(n * eval_fraction) go to eval, the next
round(n * test_fraction) to test, the rest to train. So:
- each class keeps its share in every split (stratified: within one image);
- the split depends only on the bytes, not on file names or listing order;
- identical images share a split (they have one hash); an image filed under
  two classes counts for the class that sorts first;
- adding or removing one image moves at most one other image between splits
  (with a test split: at most one across each boundary).
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

# Boundaries of one class: the largest hash that goes to eval, then to test (None: none).
Boundaries = Tuple[Optional[str], Optional[str]]


def split_counts(images: int, eval_fraction: float, test_fraction: float = 0.0) -> Tuple[int, int]:
    """(eval, test) images of a class of `images` unique images.

    Eval gets at least one image of a class that has two; test gets its share
    only while at least one image is left for training.
    """
    if images < 2:
        return 0, 0
    evals = min(images - 1, max(1, round(images * eval_fraction)))
    tests = 0
    if test_fraction > 0:
        tests = min(images - evals - 1, max(1, round(images * test_fraction)))
    return evals, max(tests, 0)


def eval_count(images: int, eval_fraction: float) -> int:
    """Eval images of a class without a test split."""
    return split_counts(images, eval_fraction)[0]


def boundaries(hashes: Iterable[str], eval_fraction: float,
               test_fraction: float = 0.0) -> Boundaries:
    """The largest hash of a class that goes to eval, and to test.

    Args:
      hashes: the unique sha256 hex digests of one class.
      eval_fraction: the share of each class that goes to eval.
      test_fraction: the share of each class that goes to test.
    """
    ordered = sorted(set(hashes))
    evals, tests = split_counts(len(ordered), eval_fraction, test_fraction)
    return (ordered[evals - 1] if evals else None,
            ordered[evals + tests - 1] if tests else None)


def owner(labels: Iterable[int]) -> int:
    """The class an image filed under several classes counts for (the first)."""
    return min(labels)


def split_of(sha256: str, label: int, bounds: Mapping[int, Boundaries],
             owners: Mapping[str, int], names: Sequence[str]) -> str:
    """The split of one image.

    Args:
      sha256: its hex digest.
      label: its class index.
      bounds: class index -> `boundaries` of that class.
      owners: sha256 -> owning class, for images filed under several classes.
      names: (train, eval) or (train, eval, test) split names.
    """
    eval_bound, test_bound = bounds.get(owners.get(sha256, label), (None, None))
    if eval_bound is not None and sha256 <= eval_bound:
        return names[1]
    if test_bound is not None and sha256 <= test_bound:
        return names[2]
    return names[0]


def assign(images: Sequence[Tuple[str, int]], eval_fraction: float, names: Sequence[str],
           test_fraction: float = 0.0) -> Dict[str, str]:
    """sha256 -> split for (sha256, label) pairs held in memory (tests, small roots).

    The Beam executor computes the same with the same functions, grouped.
    """
    labels_of: Dict[str, set] = {}
    for sha, label in images:
        labels_of.setdefault(sha, set()).add(label)
    by_class: Dict[int, list] = {}
    for sha, labels in labels_of.items():
        by_class.setdefault(owner(labels), []).append(sha)
    bounds = {label: boundaries(shas, eval_fraction, test_fraction)
              for label, shas in by_class.items()}
    owners = {sha: owner(labels) for sha, labels in labels_of.items() if len(labels) > 1}
    return {sha: split_of(sha, min(labels), bounds, owners, names)
            for sha, labels in labels_of.items()}
