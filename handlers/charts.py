"""The digest's chart: one phone-portrait PNG with two panels.

Top: negative mentions per hour of the organisation's day, stacked by department (the busiest
departments by name, the rest summed up as "other"). Bottom: SLA compliance per department as
horizontal bars, worst on top, with the percentage written on each bar.

matplotlib's object API with the Agg canvas: no display, no pyplot global state, so renders may
run in worker threads side by side. Rendering takes a few hundred milliseconds of CPU, so the
coroutine runs it in a thread and the event loop keeps serving chats meanwhile.

Sizes are in pixels of the final image: at DPI 100 a point is 100/72 px, so 20 pt is 28 px, the
smallest text here, which stays readable when the image is scaled to a phone's width.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "CHART_HEIGHT",
    "CHART_WIDTH",
    "HOURS",
    "MAX_COMPLIANCE_BARS",
    "MAX_HOURLY_SERIES",
    "render_digest_chart",
    "render_digest_chart_sync",
]

CHART_WIDTH = 1080  # px: Telegram shows photos up to 1280 px; phones are narrower
CHART_HEIGHT = 1350  # px: 4:5 portrait, the tallest ratio feeds show uncropped
DPI = 100
HOURS = 24
MAX_HOURLY_SERIES = 6  # more stacked colours cannot be told apart on a phone
MAX_COMPLIANCE_BARS = 10  # the worst ones; a longer list is unreadable at this size
MAX_LABEL = 15  # characters of a department name in the legend and on the axis

TITLE_PT = 26  # ≈ 36 px
PANEL_TITLE_PT = 22  # ≈ 31 px
TEXT_PT = 20  # ≈ 28 px, the floor for anything written on the chart

# Colour-blind-safe (Okabe-Ito); the "other" series is grey so it does not compete.
# Departments in blues and purples: green, amber and red are kept for the SLA bars below.
PALETTE = ("#0072B2", "#56B4E9", "#CC79A7", "#7B4F9D", "#A6761D", "#17BECF", "#4D4D8F")
OTHER_COLOUR = "#9E9E9E"
GOOD, FAIR, POOR = "#009E73", "#E69F00", "#D55E00"
GOOD_FROM, FAIR_FROM = 0.9, 0.7  # compliance shares where a bar turns green, amber
NO_DATA = "—"  # nothing was due: a dash, not 0 %
ELLIPSIS = "…"


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


async def render_digest_chart(
    hourly: Mapping[str, Sequence[int]],
    compliance: Mapping[str, float | None],
    *,
    title: str,
    hourly_title: str,
    compliance_title: str,
    other_label: str = ELLIPSIS,
) -> bytes:
    """The digest chart as PNG bytes, rendered in a worker thread.

    hourly: department display name -> 24 counts of negative mentions, org-local hours 0..23.
    compliance: department display name -> share 0..1 of cases that met their deadlines, None
    when nothing was due. other_label names the sum of the departments not shown by name.
    """
    return await asyncio.to_thread(
        render_digest_chart_sync,
        dict(hourly),
        dict(compliance),
        title=title,
        hourly_title=hourly_title,
        compliance_title=compliance_title,
        other_label=other_label,
    )
