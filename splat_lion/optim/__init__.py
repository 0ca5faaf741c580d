"""Optimizers over the flat parameter layout: fused Lion (the heart), fused Adam (baseline),
and the attribute-typed learning-rate table that drives both."""

from .adam import Adam, adam_step
from .base import FusedOptimizer, Optimizer, OptimizerState
from .lion import Lion, lion_step
from .lr_table import ADAM_3DGS_LR, LION_DEFAULT_LR, LrEntry, LrTable

__all__ = ["Optimizer", "FusedOptimizer", "OptimizerState", "Lion", "Adam", "LrTable", "LrEntry",
           "lion_step", "adam_step", "ADAM_3DGS_LR", "LION_DEFAULT_LR"]
