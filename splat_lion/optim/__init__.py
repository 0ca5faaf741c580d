"""Optimizers over the flat parameter layout: fused Lion (the heart), fused Adam (baseline),
the attribute-typed learning-rate table that drives both, and the registry of their names."""

from .adam import Adam, adam_step
from .base import FusedOptimizer, Optimizer, OptimizerState
from .lion import Lion, lion_step
from .lr_table import ADAM_3DGS_LR, LION_DEFAULT_LR, LrEntry, LrTable
from .registry import (OPTIMIZER_NAMES, OPTIMIZER_SPECS, RATES, OptimizerSpec, optimizer_name,
                       optimizer_spec)

__all__ = ["Optimizer", "FusedOptimizer", "OptimizerState", "Lion", "Adam", "LrTable", "LrEntry",
           "lion_step", "adam_step", "ADAM_3DGS_LR", "LION_DEFAULT_LR", "OptimizerSpec",
           "OPTIMIZER_SPECS", "OPTIMIZER_NAMES", "RATES", "optimizer_spec", "optimizer_name"]
