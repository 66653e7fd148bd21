"""Pure: accuracy per class from a confusion matrix, with a binomial confidence interval,
and which classes are clearly worse than the rest.

Per class, accuracy = share of its images predicted as that class (its recall),
with the Wilson 95% interval. A class is clearly worse when Fisher's exact test
on (right, wrong) of the class against the other classes pooled gives
p < 0.01 / K (one-sided, Bonferroni over the K classes).
"""

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
WORSE_ALPHA = 0.01


@dataclasses.dataclass(frozen=True)
class ClassAccuracy:
    """One class's accuracy on an evaluated split."""
    class_name: str
    correct: int
    total: int
    low: float
    high: float
    others: float             # accuracy on the other classes' images
    worse_p: Optional[float]  # one-sided Fisher p that this class is less accurate
    classes: int              # K, for the Bonferroni correction

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float('nan')

    @property
    def clearly_worse(self) -> bool:
        return self.worse_p is not None and self.worse_p < WORSE_ALPHA / self.classes


def per_class(confusion: np.ndarray, class_names: Sequence[str]) -> List[ClassAccuracy]:
    """Accuracy per class (rows of the confusion matrix are the true classes)."""
    confusion = np.asarray(confusion, dtype=float)
    total_correct, total = float(np.trace(confusion)), float(confusion.sum())
    rows = []
    for i, class_name in enumerate(class_names):
        n = int(round(confusion[i].sum())) if i < len(confusion) else 0
        k = int(round(confusion[i, i])) if i < len(confusion) else 0
        rest_n, rest_k = int(round(total - n)), int(round(total_correct - k))
        if n:
            interval = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE,
                                                           method='wilson')
            low, high = float(interval.low), float(interval.high)
        else:
            low, high = float('nan'), float('nan')
        worse_p = None
        if n and rest_n:
            _, worse_p = stats.fisher_exact([[k, n - k], [rest_k, rest_n - rest_k]],
                                            alternative='less')
            worse_p = float(worse_p)
        rows.append(ClassAccuracy(class_name, k, n, low, high,
                                  rest_k / rest_n if rest_n else float('nan'), worse_p,
                                  len(class_names)))
    return rows


def worse_sentences(rows: Sequence[ClassAccuracy], split: str = 'eval') -> List[str]:
    """One sentence per clearly worse class."""
    return [f"class {r.class_name!r} is clearly worse: {r.accuracy:.1%} of its {r.total} {split} "
            f"images right ({CONFIDENCE:.0%} interval {r.low:.1%} to {r.high:.1%}) against "
            f"{r.others:.1%} for the other classes (Fisher's exact test p = {r.worse_p:.2g})"
            for r in rows if r.clearly_worse]
