"""Pure checks of the InfraValidator: the server's answers against the Trainer's, latency."""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from models import features


@dataclasses.dataclass(frozen=True)
class Answer:
    """One eval image's answer: the class and every class's probability."""
    path: str
    class_name: str
    probabilities: Sequence[float]


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """An image the server answers otherwise than the Trainer did."""
    trained: Answer
    served: Answer
    difference: float   # the largest |probability difference| over the classes

    def describe(self) -> str:
        """'cats/1.jpg: served dogs 0.6100, trained cats 0.7000 (probabilities differ by
        up to 0.31)'."""
        def top(answer: Answer) -> str:
            return f'{answer.class_name} {max(answer.probabilities):.4f}'
        return (f'{self.trained.path}: served {top(self.served)}, trained '
                f'{top(self.trained)} (probabilities differ by up to {self.difference:.2g})')


def trained_answer(entry: Dict, class_names: Sequence[str]) -> Answer:
    """An entry of eval_answers.json's sample ({path, probabilities}) as an Answer."""
    probabilities = [float(p) for p in entry['probabilities']]
    return Answer(entry['path'], class_names[int(np.argmax(probabilities))], probabilities)


def served_answer(path: str, output: Dict, class_names: Sequence[str]) -> Answer:
    """One REST :predict row of serving_default as an Answer.

    Raises:
      ValueError: the row lacks an output of the serving contract, or its class index,
        class name and probabilities disagree with each other.
    """
    missing = [key for key in (features.PROBABILITIES_OUTPUT, features.CLASS_INDEX_OUTPUT,
                               features.CLASS_NAME_OUTPUT) if key not in output]
    if missing:
        raise ValueError(f'the answer for {path} has no {", ".join(missing)} '
                         f'(outputs: {sorted(output)})')
    probabilities = [float(p) for p in output[features.PROBABILITIES_OUTPUT]]
    if len(probabilities) != len(class_names):
        raise ValueError(f'the answer for {path} has {len(probabilities)} probabilities '
                         f'for {len(class_names)} classes')
    index = int(output[features.CLASS_INDEX_OUTPUT])
    name = output[features.CLASS_NAME_OUTPUT]
    if index != int(np.argmax(probabilities)) or name != class_names[index]:
        raise ValueError(f'the answer for {path} contradicts itself: class index {index}, '
                         f'label {name!r}, most probable class '
                         f'{class_names[int(np.argmax(probabilities))]!r}')
    return Answer(path, name, probabilities)


def compare(trained: Sequence[Answer], served: Sequence[Answer],
            tolerance: float) -> List[Mismatch]:
    """The images whose served class differs from the trained one, or any of whose
    probabilities differs by more than `tolerance`."""
    mismatches = []
    for want, got in zip(trained, served, strict=True):
        difference = max_difference(want, got)
        if got.class_name != want.class_name or difference > tolerance:
            mismatches.append(Mismatch(want, got, difference))
    return mismatches


def max_difference(trained: Answer, served: Answer) -> float:
    """The largest |probability difference| between two answers."""
    return float(np.max(np.abs(np.asarray(trained.probabilities, dtype=np.float64)
                               - np.asarray(served.probabilities, dtype=np.float64))))


def p50_ms(seconds: Sequence[float]) -> Optional[float]:
    """The median of request times, in milliseconds (None without requests)."""
    return float(np.percentile(seconds, 50) * 1000) if len(seconds) else None


def mismatch_reason(mismatches: Sequence[Mismatch], images: int, tolerance: float) -> str:
    """One line: how many eval images were answered wrongly, and the first of them."""
    more = f' (and {len(mismatches) - 1} more)' if len(mismatches) > 1 else ''
    return (f'the server answered {len(mismatches)} of {images} eval images otherwise than '
            f'the Trainer (same class and probabilities within {tolerance:g} expected): '
            f'{mismatches[0].describe()}{more}')
