"""The attribute-typed learning-rate table: attribute -> multiplier on the base lr, over time.

    table = LrTable.adam_3dgs(extent=scene.extent)      # 3DGS's rates, with base lr 1e-3
    opt = Adam(1e-3, lr_table=table)
    opt.lr_scale("means")                                # 0.16 * extent at step 0, decaying

A name the table does not list has scale 1.0. An entry is constant, or decays log-linearly
from `scale` to `final_scale` over `decay_steps` (3DGS's get_expon_lr_func without delay),
and may also be multiplied by the scene extent (3DGS does this for means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..errors import ConfigError

# Base learning rates the presets are written for (their multipliers are relative to these).
ADAM_3DGS_LR = 1e-3
LION_DEFAULT_LR = 1e-4
# Lion's presets, set by the Lion-vs-Adam study (benchmarks/lion_vs_adam.py,
# docs/lion-vs-adam.md): 3DGS's relative rates times one of these multipliers, on base lr
# LION_DEFAULT_LR, each rate decaying over the run to LION_DECAY times itself.
LION_FROM_POINTS = 40.0  # fitting from a point cloud or a random start
LION_REFINE = 3.0  # refining splats that are nearly right already
LION_DECAY = 0.1
# Per-attribute factors on top, for fits from points, found by the 2026-12-01 study's
# coordinate search (each optimizer searched alike: x2 or x0.5 per attribute group, kept
# when held-out PSNR rose by more than 0.05 dB; docs/lion-vs-adam.md): Lion on
# lion_default, Adam on 3DGS's rates (LrTable.adam_from_points).
LION_FROM_POINTS_FACTORS = {"scales": 2.0}
ADAM_FROM_POINTS_FACTORS = {"scales": 2.0, "opacities": 2.0, "sh0": 2.0, "shN": 2.0}


@dataclass(frozen=True)
class LrEntry:
    # multiplier on the optimizer's base lr at step 0
    scale: float
    # multiplier reached after `decay_steps` (None: constant at `scale`)
    final_scale: float | None = None
    # steps over which the multiplier decays log-linearly from scale to final_scale
    decay_steps: int = 30_000
    # also multiply by the scene extent (3DGS does so for means)
    times_extent: bool = False

    def __post_init__(self):
        for what, v in (("scale", self.scale), ("final_scale", self.final_scale)):
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"LrEntry.{what} must be a finite number >= 0, got {v!r}")
        if self.final_scale is not None and (self.scale == 0) != (self.final_scale == 0):
            raise ConfigError("LrEntry: a log-linear decay needs scale and final_scale both > 0")
        if not isinstance(self.decay_steps, int) or self.decay_steps < 1:
            raise ConfigError(f"LrEntry.decay_steps must be an int >= 1, got {self.decay_steps!r}")

    def at(self, step: int, extent: float = 1.0) -> float:
        """The multiplier at `step` (0-based)."""
        s = self.scale
        if self.final_scale is not None and s > 0:
            t = min(max(step / self.decay_steps, 0.0), 1.0)
            s = math.exp(math.log(s) * (1.0 - t) + math.log(self.final_scale) * t)
        return s * extent if self.times_extent else s


@dataclass(frozen=True)
class LrTable:
    # attribute name -> LrEntry (given as a mapping; kept as sorted pairs, so hashable)
    entries: Mapping[str, LrEntry] | tuple = ()
    # scene extent multiplying the entries marked times_extent (3DGS: 1.1 x camera radius)
    extent: float = 1.0
    # where the table's values come from
    note: str = field(default="", compare=False)

    def __post_init__(self):
        pairs = self.entries.items() if isinstance(self.entries, Mapping) else self.entries
        pairs = tuple(sorted((str(k), v) for k, v in pairs))
        for name, entry in pairs:
            if not isinstance(entry, LrEntry):
                raise TypeError(f"LrTable entry {name!r}: expected an LrEntry, got "
                                f"{type(entry).__name__}")
        object.__setattr__(self, "entries", pairs)
        if not (isinstance(self.extent, (int, float)) and math.isfinite(self.extent)
                and self.extent > 0):
            raise ConfigError(f"LrTable.extent must be a finite number > 0, got {self.extent!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def entry(self, name: str) -> LrEntry | None:
        return dict(self.entries).get(name)

    def scale(self, name: str, step: int = 0) -> float:
        """Multiplier on the base lr for attribute `name` at `step`; 1.0 if not listed."""
        e = self.entry(name)
        return 1.0 if e is None else e.at(step, self.extent)

    def with_extent(self, extent: float) -> "LrTable":
        return replace(self, extent=extent)

    def with_decay_steps(self, steps: int) -> "LrTable":
        """The same table with every decaying entry decaying over `steps` (the run's length)."""
        return replace(self, entries={n: (replace(e, decay_steps=steps) if e.final_scale else e)
                                      for n, e in self.entries})

    @classmethod
    def adam_3dgs(cls, extent: float = 1.0, steps: int = 30_000) -> "LrTable":
        """The original 3DGS Adam rates, relative to base lr ADAM_3DGS_LR = 1e-3:
        means 1.6e-4 -> 1.6e-6 (x extent), scales 5e-3, quats 1e-3, opacities 5e-2,
        sh0 2.5e-3, shN 2.5e-3 / 20."""
        return cls({
            "means": LrEntry(0.16, final_scale=0.0016, decay_steps=steps, times_extent=True),
            "scales": LrEntry(5.0),
            "quats": LrEntry(1.0),
            "opacities": LrEntry(50.0),
            "sh0": LrEntry(2.5),
            "shN": LrEntry(0.125),
        }, extent=extent, note="3DGS (Kerbl et al. 2023) Adam rates, relative to lr 1e-3")

    @classmethod
    def adam_from_points(cls, extent: float = 1.0, steps: int = 30_000) -> "LrTable":
        """Adam's rates for a fit from a point cloud or a random start: adam_3dgs times
        ADAM_FROM_POINTS_FACTORS (scales, opacities and colours x2), the study's tuning
        (docs/lion-vs-adam.md)."""
        return cls._times(cls.adam_3dgs(extent, steps), ADAM_FROM_POINTS_FACTORS,
                          "Adam from points: 3DGS rates, scales, opacities and colours x2 "
                          "(docs/lion-vs-adam.md)")

    @classmethod
    def lion_default(cls, extent: float = 1.0, steps: int = 30_000) -> "LrTable":
        """Lion's rates for a fit from a point cloud or a random start, relative to base lr
        LION_DEFAULT_LR = 1e-4: 3DGS's relative rates x LION_FROM_POINTS (40), times
        LION_FROM_POINTS_FACTORS (scales x2), every rate decaying log-linearly over the run
        to LION_DECAY (0.1) x itself (means, as in 3DGS, to 0.01 x). Chosen by the
        Lion-vs-Adam studies (docs/lion-vs-adam.md): big early steps carry the splats from
        their start, the decay lets them settle."""
        return cls._times(cls._lion(extent, steps, LION_FROM_POINTS, ""),
                          LION_FROM_POINTS_FACTORS,
                          "Lion from points: 3DGS relative rates x40 on lr 1e-4 (scales x80), "
                          "decaying to 0.1x (docs/lion-vs-adam.md)")

    @classmethod
    def lion_refine(cls, extent: float = 1.0, steps: int = 30_000) -> "LrTable":
        """Lion's rates for refining splats that are close already (a perturbed or pre-fitted
        scene): the same shape as lion_default, x LION_REFINE (3) instead of x40."""
        return cls._lion(extent, steps, LION_REFINE,
                         "Lion refine: 3DGS relative rates x3 on lr 1e-4, decaying to 0.1x "
                         "(docs/lion-vs-adam.md)")

    @classmethod
    def _times(cls, table: "LrTable", factors: Mapping[str, float], note: str) -> "LrTable":
        """`table` with the entries `factors` names multiplied (start and end) by them."""
        return cls({name: replace(e, scale=e.scale * factors.get(name, 1.0),
                                  final_scale=None if e.final_scale is None
                                  else e.final_scale * factors.get(name, 1.0))
                    for name, e in table.entries}, extent=table.extent, note=note)

    @classmethod
    def _lion(cls, extent: float, steps: int, multiplier: float, note: str) -> "LrTable":
        entries = {}
        for name, e in cls.adam_3dgs(extent, steps).entries:
            final = e.final_scale if e.final_scale is not None else e.scale * LION_DECAY
            entries[name] = replace(e, scale=e.scale * multiplier,
                                    final_scale=final * multiplier, decay_steps=steps)
        return cls(entries, extent=extent, note=note)
