"""The digest's chart: one phone-portrait PNG with two panels.

Top: negative mentions per hour of the organisation's day, stacked by department (the busiest
departments by name, the rest summed up as "other"). Bottom: SLA compliance per department as
horizontal bars, worst on top, with the percentage written on each bar.

handlers/reports/chart_drawing.py draws it in a child process: matplotlib costs some 35 MB and a few
hundred milliseconds of CPU, which the bot's own process (chats, SLA timers) should not carry
for a picture made once an evening.

Sizes are in pixels of the final image: at DPI 100 a point is 100/72 px, so 20 pt is 28 px, the
smallest text here, which stays readable when the image is scaled to a phone's width.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence

__all__ = [
    "CHART_HEIGHT",
    "CHART_WIDTH",
    "HOURS",
    "MAX_COMPLIANCE_BARS",
    "MAX_HOURLY_SERIES",
    "ChartFailed",
    "render_digest_chart",
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


RENDER_TIMEOUT_S = 60.0


class ChartFailed(RuntimeError):
    """The drawing process failed or took too long; its error output says why."""


async def render_digest_chart(
    hourly: Mapping[str, Sequence[int]],
    compliance: Mapping[str, float | None],
    *,
    title: str,
    hourly_title: str,
    compliance_title: str,
    other_label: str = ELLIPSIS,
) -> bytes:
    """The digest chart as PNG bytes, drawn by a child process.

    hourly: department display name -> 24 counts of negative mentions, org-local hours 0..23.
    compliance: department display name -> share 0..1 of cases that met their deadlines, None
    when nothing was due. other_label names the sum of the departments not shown by name.
    """
    for name, counts in hourly.items():
        if len(counts) != HOURS:  # said here, where the caller can read it
            raise ValueError(f"expected {HOURS} hourly counts for {name!r}, got {len(counts)}")
    request = {
        "hourly": {name: list(counts) for name, counts in hourly.items()},
        "compliance": dict(compliance),
        "title": title,
        "hourly_title": hourly_title,
        "compliance_title": compliance_title,
        "other_label": other_label,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "handlers.reports.chart_drawing",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        png, errors = await asyncio.wait_for(
            child.communicate(json.dumps(request).encode()), RENDER_TIMEOUT_S
        )
    except TimeoutError:
        child.kill()
        await child.wait()
        raise ChartFailed(f"drawing took more than {RENDER_TIMEOUT_S:.0f} s") from None
    if child.returncode != 0 or not png:
        tail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ChartFailed(f"drawing failed ({child.returncode}): {tail[0]}")
    return png
