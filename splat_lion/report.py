"""Reports people read: tables and plots of memory profiles, images and curves of a fit.
Above memory.py and fit.py; the CLI and the benchmarks write their pictures through here.

    print(format_table({"lion": profile, "adam": ...}))    # memory.profile_step results
    plot_profile(runs, "memory.png")                        # stacked bars (matplotlib)
    save_side_by_side(folder, targets, renders)             # heldout_<i>.png
    save_loss_curve(folder, result.loss_history)            # loss.png (matplotlib)
    save_animation(frames, "turntable.gif")
"""

from __future__ import annotations

import numpy as np

from .ledger import TAGS
from .memory import PHASES

MIB = 2**20


def format_table(runs: dict[str, dict]) -> str:
    """A text table of profile_step results (name -> profile), side by side, in MiB: the peak
    (and "predicted_peak_bytes" where a run has it), each tag's own peak, each phase's peak."""
    if not runs:
        raise ValueError("format_table: no runs to show")
    names = list(runs)
    biggest = max(r["peak_bytes"] for r in runs.values())
    digits = 3 if biggest < 10 * MIB else 2 if biggest < 1024 * MIB else 1
    width = max(10, *(len(n) for n in names))

    def row(label: str, values) -> str:
        cells = ("" if v is None else f"{v / MIB:.{digits}f}" for v in values)
        return f"{label:<24}" + "".join(f"{c:>{width + 2}}" for c in cells)

    lines = [f"{'MiB':<24}" + "".join(f"{n:>{width + 2}}" for n in names),
             row("peak", (r["peak_bytes"] for r in runs.values()))]
    if any("predicted_peak_bytes" in r for r in runs.values()):
        lines.append(row("predicted peak", (r.get("predicted_peak_bytes") for r in runs.values())))
    lines.append("by tag (each tag's peak)")
    for tag in TAGS:
        lines.append(row(f"  {tag}", (r["by_tag"].get(tag, 0) for r in runs.values())))
    lines.append("by phase (peak of the total)")
    phases = [p for p in PHASES if any(p in r["by_phase"] for r in runs.values())]
    phases += [p for r in runs.values() for p in r["by_phase"] if p not in phases]
    for p in dict.fromkeys(phases):
        lines.append(row(f"  {p}", (r["by_phase"].get(p) for r in runs.values())))
    return "\n".join(lines)


def plot_profile(runs: dict[str, dict], path, title: str | None = None):
    """A PNG at `path`: one bar per run (optimizer), the tags stacked as they stood when the
    total peaked ("at_peak"; each tag's own peak for a run without it), in MiB; a predicted
    peak, where given, as a black tick. Needs matplotlib (pip install 'splat-lion[plot]')."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"plot_profile needs matplotlib ({e}): pip install 'splat-lion[plot]' "
                          "or pip install matplotlib") from None
    if not runs:
        raise ValueError("plot_profile: no runs to plot")
    names = list(runs)
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bottom = np.zeros(len(names))
    for tag in TAGS:
        values = np.array([r.get("at_peak", r["by_tag"]).get(tag, 0) / MIB for r in runs.values()])
        if values.any():
            ax.bar(names, values, bottom=bottom, label=tag)
            bottom += values
    predicted = [(i, r["predicted_peak_bytes"] / MIB) for i, r in enumerate(runs.values())
                 if "predicted_peak_bytes" in r]
    if predicted:
        ax.scatter(*zip(*predicted), marker="_", s=900, color="black", label="predicted peak")
    ax.set_ylabel("MiB at the step's peak")
    ax.set_title(title or "memory per fit step, by tag")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
