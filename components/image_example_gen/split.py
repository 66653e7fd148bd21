"""Pure: the stratified, content-addressed train/eval split of a root without split folders.

Within each class, the unique images (by sha256 of their bytes) are ordered by
hash and the first round(n * eval_fraction) go to eval. So:
- each class keeps its share in both splits (stratified: within one image);
- the split depends only on the bytes, not on file names or listing order;
- identical images share a split (they have one hash); an image filed under
  two classes counts for the class that sorts first;
- adding or removing one image moves at most one other image between splits.
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple


def eval_count(images: int, eval_fraction: float) -> int:
    """Eval images of a class of `images` unique images: at least one when it has two."""
    if images < 2:
        return 0
    return min(images - 1, max(1, round(images * eval_fraction)))


def eval_boundary(hashes: Iterable[str], eval_fraction: float) -> Optional[str]:
    """The largest hash of a class that goes to eval (None: the class has no eval image).

    Args:
      hashes: the unique sha256 hex digests of one class.
      eval_fraction: the share of each class that goes to eval.
    """
    ordered = sorted(set(hashes))
    count = eval_count(len(ordered), eval_fraction)
    return ordered[count - 1] if count else None


def owner(labels: Iterable[int]) -> int:
    """The class an image filed under several classes counts for (the first)."""
    return min(labels)


def split_of(sha256: str, label: int, boundaries: Mapping[int, Optional[str]],
             owners: Mapping[str, int], names: Tuple[str, str]) -> str:
    """The split of one image.

    Args:
      sha256: its hex digest.
      label: its class index.
      boundaries: class index -> `eval_boundary` of that class.
      owners: sha256 -> owning class, for images filed under several classes.
      names: (train split name, eval split name).
    """
    boundary = boundaries.get(owners.get(sha256, label))
    return names[1] if boundary is not None and sha256 <= boundary else names[0]


def assign(images: Sequence[Tuple[str, int]], eval_fraction: float,
           names: Tuple[str, str]) -> Dict[str, str]:
    """sha256 -> split for (sha256, label) pairs held in memory (tests, small roots).

    The Beam executor computes the same with the same functions, grouped.
    """
    labels_of: Dict[str, set] = {}
    for sha, label in images:
        labels_of.setdefault(sha, set()).add(label)
    by_class: Dict[int, list] = {}
    for sha, labels in labels_of.items():
        by_class.setdefault(owner(labels), []).append(sha)
    boundaries = {label: eval_boundary(shas, eval_fraction) for label, shas in by_class.items()}
    owners = {sha: owner(labels) for sha, labels in labels_of.items() if len(labels) > 1}
    return {sha: split_of(sha, min(labels), boundaries, owners, names)
            for sha, labels in labels_of.items()}
