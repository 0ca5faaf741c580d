"""The errors splat-lion raises on purpose: one family, each naming the file, field or option
at fault and how to fix it. The CLI prints such an error as one line and exits with status 2;
anything else is a bug, shown with its traceback.

    SplatLionError
      ConfigError         a setting out of its declared range (configs, CLI options)
      PlyError            a PLY file that is not a valid 3DGS scene
      DatasetError        a capture that cannot be read
      CheckpointError     a checkpoint that is missing, corrupt, or of another fit
      BackendError        the chosen backend cannot run here, or a kernel does not build
      MemoryBudgetError   a fit predicted not to fit its memory budget
      FitError            a fit that went wrong: NonFiniteError (NaN, infinity),
                          DivergenceError (parameters or loss running away)
      OutputError         a result that cannot be written (a full disk, a busy --out)
      ExportError         splats an export format cannot hold, or a file not of its format

Each also derives from the built-in exception it stands for (ValueError, RuntimeError,
OSError, ...), so code that catches those keeps working.
"""

from __future__ import annotations


class SplatLionError(Exception):
    """Base of every error splat-lion raises on purpose."""


class ConfigError(SplatLionError, ValueError):
    """A setting outside its declared range; the message names the setting (or option)."""


class PlyError(SplatLionError, ValueError):
    """A PLY file that is not a valid 3DGS scene; the message names the file and field."""


class DatasetError(SplatLionError, ValueError):
    """A capture folder that cannot be read; the message names the file, the field or line,
    and the fix."""


class CheckpointError(SplatLionError, ValueError):
    """A checkpoint that is missing, corrupt, from another format version or another fit."""


class BackendError(SplatLionError, RuntimeError):
    """The backend cannot run on this machine, or a kernel does not build or launch."""


class MemoryBudgetError(SplatLionError, ValueError):
    """A fit predicted not to fit its memory budget; the message says by how much."""


class FitError(SplatLionError, RuntimeError):
    """A fit that cannot go on; the message names the step and what to change."""


class NonFiniteError(FitError, FloatingPointError):
    """A NaN or infinity appeared during a fit; the message names the step and attribute."""


class DivergenceError(FitError):
    """A fit running away (parameters past sane bounds, or the loss far above its start);
    the message names the step, the attribute and a learning rate to try."""


class OutputError(SplatLionError, OSError):
    """A result that cannot be written, or an output folder another fit is using; the
    message says where the work that could be kept was kept."""


class ExportError(SplatLionError, ValueError):
    """Splats an export format cannot hold, or a file that is not of the format it claims
    (export.py)."""
