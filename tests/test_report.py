"""Reports (splat_lion/report.py): memory tables and plots, and the pictures of a fit."""

from __future__ import annotations

import sys

import pytest

from splat_lion import memory, report
from splat_lion.ledger import TAGS


def fake_profile(scale: int) -> dict:
    by_tag = {t: scale * (i + 1) * 2**20 for i, t in enumerate(TAGS)}
    return {"peak_bytes": sum(by_tag.values()), "by_tag": by_tag, "at_peak": by_tag,
            "by_phase": {p: scale * 2**20 for p in memory.PHASES}}


def test_format_table_lists_tags_and_phases_with_the_runs_side_by_side():
    runs = {"lion": fake_profile(1), "adam": {**fake_profile(2), "predicted_peak_bytes": 2**30}}
    text = report.format_table(runs)
    header, *rows = text.splitlines()
    assert header.split() == ["MiB", "lion", "adam"]
    for label in (*TAGS, *memory.PHASES, "peak", "predicted peak"):
        assert any(r.strip().startswith(label) for r in rows), label
    assert "1024.0" in text  # the predicted peak, in MiB


def test_plot_profile_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"splat-lion\[plot\]"):
        report.plot_profile({"lion": fake_profile(1)}, tmp_path / "m.png")


def test_plot_profile_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = report.plot_profile({"lion": fake_profile(1), "adam": fake_profile(2)},
                               tmp_path / "memory.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
