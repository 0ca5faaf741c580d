"""The optimizers by name ("lion", "lion-bf16", "adam"): the one home of those names, of how
each is built for a fit, and of the state it keeps per parameter float.

    spec = optimizer_spec("lion-bf16")
    opt = spec.make(extent, steps)           # Lion, LrTable.lion_default, bfloat16 momentum
    spec.batch_size("from_points")           # 4: the CLI's views per step from points
    spec.state_bytes(layout.total)           # 2 bytes per float of the flat layout
    optimizer_name(opt)                      # "lion-bf16"

FitConfig.optimizer, the CLI's --optimizer and the memory predictor take these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backend import Backend
from ..errors import ConfigError
from .adam import Adam
from .base import FusedOptimizer
from .lion import LION_CAUTIOUS, Lion
from .lr_table import ADAM_3DGS_LR, LION_DEFAULT_LR, LrTable

# The lr presets by the start of a fit (FitConfig.rates): "from_points" for a fit from a
# point cloud or a random start, "refine" for splats that are nearly right already; each
# optimizer has a table for each
RATES = ("from_points", "refine")
LION_TABLES: dict[str, Callable[[float, int], LrTable]] = {
    "from_points": LrTable.lion_default,
    "refine": LrTable.lion_refine,
}
ADAM_TABLES: dict[str, Callable[[float, int], LrTable]] = {
    "from_points": LrTable.adam_from_points,  # 3DGS's, tuned by the study
    "refine": LrTable.adam_3dgs,  # 3DGS's own
}


def _lion_table(extent: float, steps: int, rates: str) -> LrTable:
    return LION_TABLES[rates](extent, steps)


def _adam_table(extent: float, steps: int, rates: str) -> LrTable:
    return ADAM_TABLES[rates](extent, steps)


def _lion_preset(rates: str) -> dict[str, Any]:
    return {"cautious": LION_CAUTIOUS[rates]}


@dataclass(frozen=True)
class OptimizerSpec:
    # the name FitConfig.optimizer, the CLI and the memory predictor use
    name: str
    # how reports print it
    label: str
    # one line saying what it is (CLI help)
    description: str
    # the optimizer class
    cls: type[FusedOptimizer]
    # settings passed to cls that tell this entry from others of the same class,
    # as (field, value) pairs (Lion's momentum_dtype)
    options: tuple[tuple[str, Any], ...]
    # the base lr the lr tables are written for (used when no lr is given)
    base_lr: float
    # (extent, steps, rates) -> the attribute lr table of a fit of `steps` steps
    lr_table: Callable[[float, int, str], LrTable]
    # state buffers per parameter float (Lion 1, Adam 2)
    state_buffers: int
    # bytes per element of each state buffer (float32 4, bfloat16 2)
    state_itemsize: int
    # views per step of the CLI's fits from points (--batch-size's default; refining: 1),
    # the study's best at equal views (docs/lion-vs-adam.md): Lion 4, Adam 1
    batch_from_points: int = 1
    # rates -> more settings passed to cls with that lr preset (Lion's cautious)
    preset: Callable[[str], dict[str, Any]] = lambda rates: {}

    def make(self, extent: float, steps: int, *, lr: float | None = None,
             rates: str = "from_points", backend: Backend | None = None) -> FusedOptimizer:
        """The optimizer of a fit of `steps` steps over a scene of size `extent`.
        lr: the base lr (None: base_lr); rates: the lr preset, one of RATES."""
        if rates not in RATES:
            raise ConfigError(f"rates must be one of {', '.join(RATES)}, got {rates!r}")
        return self.cls(self.base_lr if lr is None else lr,
                        lr_table=self.lr_table(extent, steps, rates), backend=backend,
                        **dict(self.options), **self.preset(rates))

    def batch_size(self, rates: str) -> int:
        """The views per step the CLI's fits use by default with lr preset `rates`."""
        return self.batch_from_points if rates == "from_points" else 1

    def state_bytes(self, num_floats: int) -> int:
        """Bytes of state it keeps for `num_floats` parameter floats (a Layout's total)."""
        return self.state_buffers * self.state_itemsize * int(num_floats)

    def describes(self, optimizer) -> bool:
        """Whether `optimizer` is this entry: its class, with these options."""
        return type(optimizer) is self.cls and all(getattr(optimizer, k) == v
                                                   for k, v in self.options)


OPTIMIZER_SPECS: dict[str, OptimizerSpec] = {s.name: s for s in (
    OptimizerSpec("lion", "Lion", "fused Lion (float32 momentum; cautious from points)", Lion,
                  (("momentum_dtype", "float32"),), LION_DEFAULT_LR, _lion_table, 1, 4, 4,
                  _lion_preset),
    OptimizerSpec("lion-bf16", "Lion bf16", "Lion with bfloat16 momentum (half of Lion's state)",
                  Lion, (("momentum_dtype", "bfloat16"),), LION_DEFAULT_LR, _lion_table, 1, 2,
                  4, _lion_preset),
    OptimizerSpec("adam", "Adam", "Adam at 3DGS's rates, tuned for fits from points (the "
                  "baseline, twice Lion's state)", Adam, (), ADAM_3DGS_LR, _adam_table, 2, 4, 1),
)}
OPTIMIZER_NAMES = tuple(OPTIMIZER_SPECS)


def optimizer_spec(name: str) -> OptimizerSpec:
    """The entry of optimizer `name`; a clear error for a name that is not one."""
    spec = OPTIMIZER_SPECS.get(name)
    if spec is None:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {name!r}")
    return spec


def optimizer_name(optimizer) -> str:
    """The name of `optimizer` ("lion", "lion-bf16", "adam"), else its class name in lower
    case (an optimizer of one's own)."""
    for spec in OPTIMIZER_SPECS.values():
        if spec.describes(optimizer):
            return spec.name
    return type(optimizer).__name__.lower()
