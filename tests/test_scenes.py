"""The bundled scenes: found by name, valid, small, and what scenes/make_scenes.py makes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from splat_lion import get_backend, load_ply, scenes

# these check the bundled files: on the host, whatever the default backend is
CPU = get_backend("cpu")


def test_three_scenes_are_bundled_and_valid():
    assert scenes.names() == ["knot", "planet", "shapes"]
    degrees = {}
    for name in scenes.names():
        path = scenes.path(name)
        assert path.stat().st_size < 2_000_000, name
        g = load_ply(path, backend=CPU)  # raises on any non-finite value
        assert 2000 <= g.count <= 10_000
        sigma = np.exp(g.scales)
        assert np.median(sigma) > 0.003 and np.median(sigma) < 0.1, name
        assert np.linalg.norm(g.means, axis=1).max() < 2.0
        degrees[name] = g.sh_degree
        if g.sh_degree == 3:
            assert np.abs(g.shN).max() > 0.01, "view-dependent colour expected"
    assert 3 in degrees.values()


def test_unknown_scene_lists_the_names():
    with pytest.raises(ValueError, match="no bundled scene 'garden'.*knot"):
        scenes.path("garden")


def test_the_script_makes_the_bundled_files(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scenes" / "make_scenes.py"
    spec = importlib.util.spec_from_file_location("make_scenes", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in scenes.names():
        made = load_ply(tmp_path / f"{name}.ply", backend=CPU)
        bundled = load_ply(scenes.path(name), backend=CPU)
        # the same up to libm's last bits on another platform
        np.testing.assert_allclose(made.params.data, bundled.params.data, rtol=1e-5, atol=1e-6)
