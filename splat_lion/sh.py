"""Spherical-harmonic facts every layer uses: the one home of the coefficient counts, the
degree-0 case and the DC colour constant (NumPy only; of the package, only its errors).

    sh_coeffs(3) == 16          # (d + 1)² coefficients per colour channel
    sh_rest(3) == 15            # of which shN holds all but the first: [N, 15, 3]
    sh_degree_of(9) == 2        # the inverse; a count that is no square of 1..4 is an error
    empty_shN(buffer, n)        # [N, 0, 3]: shN at degree 0, which stores nothing

Colour of degree 0: rgb = SH_C0 * sh0 + 0.5 (3DGS); rgb_to_sh0 is its inverse.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

DEGREES = (0, 1, 2, 3)  # SH degrees splat-lion supports (3DGS: up to 3)
SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))


def check_degree(sh_degree, name: str = "sh_degree") -> int:
    """`sh_degree` as an int, or ValueError if it is not one of DEGREES."""
    if isinstance(sh_degree, bool) or sh_degree not in DEGREES:
        raise ConfigError(f"{name} must be 0, 1, 2 or 3, got {sh_degree!r}")
    return int(sh_degree)


def sh_coeffs(sh_degree: int) -> int:
    """Coefficients per colour channel for a degree 0..3: (d + 1)²."""
    return (check_degree(sh_degree) + 1) ** 2


def sh_rest(sh_degree: int) -> int:
    """Coefficients per channel beyond the first (the rows of shN): (d + 1)² − 1."""
    return sh_coeffs(sh_degree) - 1


def sh_degree_of(coeffs: int) -> int:
    """The degree whose sh_coeffs is `coeffs` (1, 4, 9 or 16)."""
    for d in DEGREES:
        if sh_coeffs(d) == coeffs:
            return d
    raise ValueError(f"{coeffs} SH coefficients per channel is no degree's: expected 1, 4, 9 or 16")


def empty_shN(buffer, count: int):  # noqa: N802
    """[count, 0, 3]: shN at SH degree 0 (nothing stored), a view of any 1-D `buffer` of the
    right backend."""
    return buffer[:0].reshape(count, 0, 3)


def rgb_to_sh0(rgb) -> np.ndarray:
    """sh0 of a colour in [0, 1] (float64): (rgb − 0.5) / SH_C0."""
    return (np.asarray(rgb, np.float64) - 0.5) / SH_C0
