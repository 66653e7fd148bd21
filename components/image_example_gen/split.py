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

A class's boundary hash is found without holding all its hashes in one place
(at a million photos per class that would be one worker's memory): hashes are
counted per bucket (their first BUCKET_CHARS hex digits; sha256 spreads them
evenly), the counts say which bucket holds the boundary and at which rank
(`cuts`), and only that bucket's hashes are sorted (`boundary_in_bucket`).
The result is exactly `boundaries`.
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

# Boundaries of one class: the largest hash that goes to eval, then to test (None: none).
Boundaries = Tuple[Optional[str], Optional[str]]
# Where a boundary falls: (bucket, 0-based rank of the boundary hash among the bucket's hashes).
Cut = Optional[Tuple[str, int]]
# 16**4 = 65,536 buckets: the counts of a class stay small, and a bucket of a class
# of 50 million images holds about 760 hashes.
BUCKET_CHARS = 4


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


def bucket(sha256: str) -> str:
    """The bucket of a hash: its first BUCKET_CHARS hex digits."""
    return sha256[:BUCKET_CHARS]


def cuts(bucket_counts: Iterable[Tuple[str, int]], eval_fraction: float,
         test_fraction: float = 0.0) -> Tuple[Cut, Cut]:
    """Where a class's eval and test boundaries fall, from its hash count per bucket.

    Args:
      bucket_counts: (bucket, unique hashes of the class in it) pairs.
      eval_fraction: the share of each class that goes to eval.
      test_fraction: the share of each class that goes to test.
    """
    ordered = sorted(bucket_counts)
    evals, tests = split_counts(sum(count for _, count in ordered), eval_fraction,
                                test_fraction)
    return _locate(ordered, evals), (_locate(ordered, evals + tests) if tests else None)


def _locate(ordered: Sequence[Tuple[str, int]], k: int) -> Cut:
    """(bucket, rank in it) of the k-th smallest hash (1-based); None for k = 0."""
    seen = 0
    for name, count in ordered:
        if k and seen + count >= k:
            return name, k - seen - 1
        seen += count
    return None


def boundary_in_bucket(hashes: Iterable[str], rank: int) -> str:
    """The boundary hash: the rank-th smallest unique hash of its bucket."""
    return sorted(set(hashes))[rank]


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
