"""splat-lion: fit 3D Gaussian splats on NVIDIA GPUs with CuPy, around a fused Lion optimizer.

Kernels are CUDA C (`kernels/*.cu`); without a GPU the same source runs on the CPU through
`splat_lion.cuda_cpu`. See README.md and DESIGN.md.
"""

__version__ = "0.1.0"

from . import datasets, memory, problem, report, scenes  # noqa: E402
from .backend import Backend, BackendUnavailable, get_backend  # noqa: E402
from .cameras import Camera, orbit_cameras  # noqa: E402
from .densify import DensifyConfig  # noqa: E402
from .fit import FitConfig, FitResult, fit  # noqa: E402
from .gaussians import Gaussians  # noqa: E402
from .layout import Flat, Layout  # noqa: E402
from .optim import Adam, Lion, LrEntry, LrTable, Optimizer  # noqa: E402
from .ply import PlyError, load_ply, save_ply  # noqa: E402
from .problem import Problem, ProblemConfig, load_problem  # noqa: E402
from .render import Gradients, RenderOutput, render, render_backward  # noqa: E402
from . import backend, selftest  # noqa: E402

# The cuda probe's kernel half compiles through kernels.py, a module above backend.py: wired here.
backend.cuda_kernel_check = selftest.probe

__all__ = ["__version__", "Backend", "BackendUnavailable", "get_backend", "Layout", "Flat",
           "Optimizer", "Lion", "Adam", "LrTable", "LrEntry", "Gaussians", "load_ply", "save_ply",
           "PlyError", "scenes", "Camera", "orbit_cameras", "render", "RenderOutput",
           "render_backward", "Gradients", "fit", "FitConfig", "FitResult", "DensifyConfig",
           "datasets", "memory", "problem", "report", "Problem", "ProblemConfig", "load_problem"]
