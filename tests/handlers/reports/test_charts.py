"""The digest chart: a real PNG of the promised size, Cyrillic names, empty days."""

from __future__ import annotations

import struct
import zlib

import pytest

from handlers.reports.chart_drawing import _hourly_series, render_digest_chart_sync
from handlers.reports.charts import (
    CHART_HEIGHT,
    CHART_WIDTH,
    MAX_HOURLY_SERIES,
    ChartFailed,
    render_digest_chart,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked: a truncated file fails here."""
    assert data.startswith(PNG_SIGNATURE)
    chunks: list[tuple[bytes, bytes]] = []
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def ihdr_size(data: bytes) -> tuple[int, int]:
    kind, body = png_chunks(data)[0]
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", body[:8])
    return width, height


def day(*peaks: tuple[int, int]) -> list[int]:
    counts = [0] * 24
    for hour, count in peaks:
        counts[hour] = count
    return counts


async def test_chart_is_a_phone_portrait_png() -> None:
    png = await render_digest_chart(
        {"ЖКХ и благоустройство": day((9, 5), (18, 7)), "Транспорт": day((8, 3))},
        {"ЖКХ и благоустройство": 0.62, "Транспорт": 0.95, "Культура": None},
        title="Сводка за 2 декабря",
        hourly_title="Негатив по часам",
        compliance_title="Соблюдение SLA",
    )
    chunks = png_chunks(png)
    assert [kind for kind, _ in chunks][-1] == b"IEND"
    assert ihdr_size(png) == (CHART_WIDTH, CHART_HEIGHT) == (1080, 1350)
    assert sum(len(body) for kind, body in chunks if kind == b"IDAT") > 10_000


def test_cyrillic_glyphs_render_without_warnings(recwarn: pytest.WarningsRecorder) -> None:
    # A missing glyph is a UserWarning ("Glyph … missing from font"); drawn in this process
    # so that pytest sees it.
    render_digest_chart_sync(
        {"Образование": day((10, 2))},
        {"Здравоохранение": 0.5},
        title="Еженедельный отчёт — ёжик",
        hourly_title="Упоминания",
        compliance_title="Доля в срок",
        other_label="прочие",
    )
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


async def test_empty_day_still_draws_a_chart() -> None:
    png = await render_digest_chart(
        {}, {}, title="Digest", hourly_title="Negative", compliance_title="SLA"
    )
    assert ihdr_size(png) == (CHART_WIDTH, CHART_HEIGHT)
    zero = await render_digest_chart(
        {"Housing": [0] * 24}, {"Housing": None}, title="", hourly_title="", compliance_title=""
    )
    assert ihdr_size(zero) == (CHART_WIDTH, CHART_HEIGHT)


def test_many_departments_fold_into_other() -> None:
    hourly = {f"dept {i:02d}": day((12, i + 1)) for i in range(10)}
    series = _hourly_series(hourly, "other")
    assert len(series) == MAX_HOURLY_SERIES
    assert [label for label, _, _ in series[:3]] == ["dept 09", "dept 08", "dept 07"]
    label, counts, _ = series[-1]
    assert label == "other" and counts[12] == sum(range(1, 6))  # the five quietest
    assert sum(sum(c) for _, c, _ in series) == sum(range(1, 11))  # nothing lost


async def test_hours_must_be_a_whole_day() -> None:
    with pytest.raises(ValueError, match="24 hourly counts"):
        _hourly_series({"Housing": [1, 2, 3]}, "other")
    with pytest.raises(ValueError, match="24 hourly counts for 'Housing'"):
        await render_digest_chart(
            {"Housing": [1, 2, 3]}, {}, title="", hourly_title="", compliance_title=""
        )


async def test_a_failed_drawing_says_why() -> None:
    # Not JSON-serialisable data never reaches the child; a bad value that does is its error.
    with pytest.raises(ChartFailed, match="drawing failed"):
        await render_digest_chart(
            {"Housing": ["many"] * 24},  # type: ignore[list-item]
            {},
            title="",
            hourly_title="",
            compliance_title="",
        )
