"""Draws the digest's chart (see handlers/reports/charts.py): matplotlib's object API on the Agg
canvas, no display and no pyplot global state.

Run as `python -m handlers.reports.chart_drawing` it reads the chart's data as JSON on stdin
and writes the PNG to stdout: the bot renders in such a child process, so matplotlib's
memory and CPU never weigh on the process that serves chats and fires SLA timers.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from handlers.reports.charts import (
    CHART_HEIGHT,
    CHART_WIDTH,
    DPI,
    ELLIPSIS,
    FAIR,
    FAIR_FROM,
    GOOD,
    GOOD_FROM,
    HOURS,
    MAX_COMPLIANCE_BARS,
    MAX_HOURLY_SERIES,
    MAX_LABEL,
    NO_DATA,
    OTHER_COLOUR,
    PALETTE,
    PANEL_TITLE_PT,
    POOR,
    TEXT_PT,
    TITLE_PT,
)


def _short(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1].rstrip() + ELLIPSIS


def _hourly_series(
    hourly: Mapping[str, Sequence[int]], other_label: str
) -> list[tuple[str, list[int], str]]:
    """(label, 24 counts, colour): the busiest departments, the rest summed as other."""
    counts = {name: _day(values) for name, values in hourly.items()}
    ranked = sorted(counts, key=lambda name: (-sum(counts[name]), name))
    ranked = [name for name in ranked if sum(counts[name]) > 0]
    if len(ranked) <= MAX_HOURLY_SERIES:
        shown, rest = ranked, []
    else:
        shown, rest = ranked[: MAX_HOURLY_SERIES - 1], ranked[MAX_HOURLY_SERIES - 1 :]
    series = [(name, counts[name], PALETTE[i % len(PALETTE)]) for i, name in enumerate(shown)]
    if rest:
        summed = [sum(counts[name][hour] for name in rest) for hour in range(HOURS)]
        series.append((other_label, summed, OTHER_COLOUR))
    return series


def _day(values: Sequence[int]) -> list[int]:
    if len(values) != HOURS:
        raise ValueError(f"expected {HOURS} hourly counts, got {len(values)}")
    return [max(0, int(value)) for value in values]


def _draw_hourly(axes: Axes, series: list[tuple[str, list[int], str]], title: str) -> None:
    axes.set_title(title, fontsize=PANEL_TITLE_PT, loc="left", pad=14)
    hours = list(range(HOURS))
    bottom = [0] * HOURS
    for label, counts, colour in series:
        axes.bar(hours, counts, bottom=bottom, color=colour, width=0.85, label=_short(label))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xlim(-0.6, HOURS - 0.4)
    axes.set_xticks(range(0, HOURS, 3))
    axes.set_xticklabels([f"{hour:02d}" for hour in range(0, HOURS, 3)])
    axes.tick_params(labelsize=TEXT_PT)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # no 2.5 mentions
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    if not series:
        axes.set_ylim(0, 1)
        axes.text(0.5, 0.5, NO_DATA, transform=axes.transAxes, ha="center", fontsize=TITLE_PT)
        return
    axes.legend(
        fontsize=TEXT_PT,
        loc="upper left",
        frameon=False,
        ncols=2 if len(series) > 3 else 1,
        handlelength=1.0,
        columnspacing=1.0,
    )
    top = max(bottom)
    # Room above the tallest bar for the legend, which sits inside the panel.
    rows = (len(series) + 1) // 2 if len(series) > 3 else len(series)
    axes.set_ylim(0, max(1, top) * (1.25 + 0.18 * rows))


def _draw_compliance(axes: Axes, compliance: Mapping[str, float | None], title: str) -> None:
    axes.set_title(title, fontsize=PANEL_TITLE_PT, loc="left", pad=14)
    # Worst first, nothing-due last; the list is cut to the worst ones.
    ranked = sorted(
        compliance.items(), key=lambda kv: (kv[1] is None, kv[1] if kv[1] is not None else 0, kv[0])
    )[:MAX_COMPLIANCE_BARS]
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlim(0, 100)
    axes.set_xticks([0, 50, 100])
    axes.set_xticklabels(["0 %", "50 %", "100 %"])
    axes.tick_params(labelsize=TEXT_PT)
    axes.grid(axis="x", alpha=0.3)
    if not ranked:
        axes.set_yticks([])
        axes.text(0.5, 0.5, NO_DATA, transform=axes.transAxes, ha="center", fontsize=TITLE_PT)
        return
    slots = max(len(ranked), 4)  # a few bars keep their height and stay at the top
    positions = [slots - 1 - index for index in range(len(ranked))]  # the worst at the top
    for position, (_name, share) in zip(positions, ranked, strict=True):
        value = 0.0 if share is None else max(0.0, min(1.0, share)) * 100
        colour = GOOD if value >= GOOD_FROM * 100 else FAIR if value >= FAIR_FROM * 100 else POOR
        axes.barh(position, value, color=colour, height=0.7)
        label = NO_DATA if share is None else f"{value:.0f} %"
        inside = value >= 80  # the number goes inside a long bar, after a short one
        axes.text(
            value - 1.5 if inside else value + 1.5,
            position,
            label,
            va="center",
            ha="right" if inside else "left",
            fontsize=TEXT_PT,
            color="white" if inside else "#222222",
            fontweight="bold",
        )
    axes.set_yticks(positions)
    axes.set_yticklabels([_short(name) for name, _ in ranked])
    axes.set_ylim(-0.6, slots - 0.4)


def render_digest_chart_sync(
    hourly: Mapping[str, Sequence[int]],
    compliance: Mapping[str, float | None],
    *,
    title: str,
    hourly_title: str,
    compliance_title: str,
    other_label: str = ELLIPSIS,
) -> bytes:
    """The PNG, CHART_WIDTH × CHART_HEIGHT. Blocking: call render_digest_chart from async code."""
    figure = Figure(figsize=(CHART_WIDTH / DPI, CHART_HEIGHT / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=TITLE_PT, fontweight="bold", x=0.04, ha="left")
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1.1, 1.0]})
    _draw_hourly(top, _hourly_series(hourly, other_label), hourly_title)
    _draw_compliance(bottom, compliance, compliance_title)
    # Fixed margins rather than a tight bounding box: the image keeps its exact pixel size.
    figure.subplots_adjust(left=0.34, right=0.93, top=0.90, bottom=0.05, hspace=0.32)
    top.set_position(_full_width(top))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _full_width(axes: Axes) -> list[float]:
    """The hourly panel needs no room for department names on its left: widen it."""
    box = axes.get_position()
    left = 0.10
    return [left, box.y0, box.x1 - left, box.height]


def main() -> None:
    request = json.load(sys.stdin)
    png = render_digest_chart_sync(
        request["hourly"],
        request["compliance"],
        title=request["title"],
        hourly_title=request["hourly_title"],
        compliance_title=request["compliance_title"],
        other_label=request.get("other_label", ELLIPSIS),
    )
    sys.stdout.buffer.write(png)


if __name__ == "__main__":
    main()
