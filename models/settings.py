"""The fields of a stage's settings dataclass: default, help and check, in one place.

A stage's settings (trainer_settings.Training, the ingest's, the data checks') are a
frozen dataclass of `setting(...)` fields whose __post_init__ calls `check_fields`. The
runners' command-line flags are derived from the fields (pipeline/cli.py): `--field-name`,
or for a bool the flag that flips its default (`--name` for False, `--no-name` for True).
"""

import dataclasses
import numbers
from typing import Any, Callable, Optional, Sequence, Tuple

# A check: a predicate and how to say it (the error reads '<name> must be <how>').
Check = Tuple[Callable[[Any], bool], str]

POSITIVE: Check = (lambda v: v > 0, '> 0')
AT_LEAST_1: Check = (lambda v: v >= 1, '>= 1')
NOT_NEGATIVE: Check = (lambda v: v >= 0, '>= 0')
FRACTION: Check = (lambda v: 0.0 <= v < 1.0, 'in [0, 1)')
SHARE: Check = (lambda v: 0.0 <= v <= 1.0, 'in [0, 1]')
OPEN_FRACTION: Check = (lambda v: 0.0 < v < 1.0, 'in (0, 1)')


def setting(default, help_: str, *, check: Optional[Check] = None,
            choices: Optional[Sequence[str]] = None):
    """A settings field: its default, help text, and either a check or the choices a
    string may take."""
    return dataclasses.field(default=default,
                             metadata={'help': help_, 'check': check, 'choices': choices})


def check_fields(settings, kind: type) -> None:
    """Sets each field of `kind` (a frozen settings dataclass) in settings, an instance of
    it or of a subclass, to its checked value (typed)."""
    for field in dataclasses.fields(kind):
        object.__setattr__(settings, field.name, typed(field, getattr(settings, field.name)))


def typed(field: dataclasses.Field, value: Any) -> Any:
    """A settings field's value, checked against the field (its type, then its check or
    choices) and as that type (an integral float for an int, an int for a float).

    Raises:
      ValueError: naming the field, the expected and the given value.
    """
    name, kind = field.name, field.type
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f'{name} must be True or False, got {value!r}')
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f'{name} must be a string, got {value!r}')
    elif isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            kind is int and value != int(value)):
        raise ValueError(f'{name} must be {"an integer" if kind is int else "a number"}, '
                         f'got {value!r}')
    value = kind(value)
    choices, check = field.metadata['choices'], field.metadata['check']
    if choices is not None and value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')
    if check is not None and not check[0](value):
        raise ValueError(f'{name} must be {check[1]}, got {value!r}')
    return value
