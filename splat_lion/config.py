"""Ranged settings: a frozen config declares each numeric field's range once, and both its
validation and the CLI's option parsing come from that declaration.

    @dataclass(frozen=True)
    class FitConfig:
        # optimisation steps (one view each)
        steps: int = ranged(300, 1, 10_000_000)
        def __post_init__(self):
            check_ranges(self)                   # ConfigError: "steps must be an int in ..."

    parser.add_argument("--steps", type=option_type(FitConfig, "steps"))
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, field, fields

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    # the least value allowed (None: no bound)
    lo: float | None = None
    # the largest value allowed (None: no bound)
    hi: float | None = None
    # int or float
    kind: type = int
    # whether None is allowed (the field's "use the default" value)
    optional: bool = False
    # whether lo itself is excluded (a float that must be > lo, e.g. a length > 0)
    open_lo: bool = False
    # whether hi itself is excluded
    open_hi: bool = False

    def describe(self) -> str:
        """'an int in [1, 10000000]', 'a number > 0', ..."""
        what = "an int" if self.kind is int else "a number"
        if self.lo is not None and self.hi is not None:
            text = (f"{what} in {'(' if self.open_lo else '['}{_num(self.lo)}, "
                    f"{_num(self.hi)}{')' if self.open_hi else ']'}")
        elif self.lo is not None:
            text = f"{what} {'>' if self.open_lo else '>='} {_num(self.lo)}"
        elif self.hi is not None:
            text = f"{what} {'<' if self.open_hi else '<='} {_num(self.hi)}"
        else:
            text = f"a finite {'int' if self.kind is int else 'number'}"
        return f"None or {text}" if self.optional else text

    def ok(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool):
            return False
        if self.kind is int:
            try:
                operator.index(value)  # int and NumPy integers, not floats
            except TypeError:
                return False
        elif not isinstance(value, numbers.Real):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.open_lo and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.open_hi and v == self.hi)))

    def check(self, name: str, value):
        """`value`, or ConfigError naming `name` and the range."""
        if not self.ok(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {value!r}")
        return value


def _num(x: float) -> str:
    """1000000 for whole numbers (not 1e+06), 0.5 or 1e-12 otherwise."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def ranged(default, lo=None, hi=None, *, kind: type = int, optional: bool = False,
           open_lo: bool = False, open_hi: bool = False):
    """A dataclass field with a declared range (see Range)."""
    return field(default=default, metadata={"range": Range(lo, hi, kind, optional, open_lo,
                                                           open_hi)})


def range_of(cls, name: str) -> Range:
    for f in fields(cls):
        if f.name == name and "range" in f.metadata:
            return f.metadata["range"]
    raise KeyError(f"{cls.__name__}.{name} has no declared range")


def check_ranges(config) -> None:
    """ConfigError for the first field of `config` outside its declared range."""
    for f in fields(config):
        rng = f.metadata.get("range")
        if rng is not None:
            rng.check(f.name, getattr(config, f.name))


def option_type(cls, name: str, *, rng: Range | None = None):
    """An argparse `type` that parses a value of `cls`'s field `name` (or of the range `rng`,
    for an option no config holds) and refuses one outside its range, naming the range."""
    import argparse

    rng = rng or range_of(cls, name)

    def parse(text: str):
        try:
            value = rng.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {rng.describe()}") from None
        if not rng.ok(value):
            raise argparse.ArgumentTypeError(f"must be {rng.describe()}, got {text}")
        return value

    parse.__name__ = rng.kind.__name__  # argparse names the type in its messages
    return parse
