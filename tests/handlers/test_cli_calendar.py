"""`otklik calendar`: a year's non-working, working weekend and shortened days, read with the
shipped config and playbook."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from handlers.cli import app
from tests.doubles.support import ROOT

runner = CliRunner()
EXAMPLE = ROOT / "config.example.yaml"


def _calendar(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["calendar", "-c", str(EXAMPLE), "--json", *args], env={})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def test_2028_lists_the_new_year_holidays_as_non_working() -> None:
    data = _calendar("--year", "2028")
    [working] = data["calendars"]  # type: ignore[misc]
    assert (working["name"], working["country"], working["known"]) == ("working", "RU", False)
    non_working = {d["date"]: d for d in working["non_working"]}
    for day in range(1, 9):
        assert f"2028-01-0{day}" in non_working, day
    assert non_working["2028-01-07"]["why"] == "Рождество Христово"
    assert non_working["2028-01-04"]["weekday"] == "tue"
    assert non_working["2028-01-09"]["why"] == "выходной"  # a Sunday
    assert "2028-01-10" not in non_working
    assert "ТК РФ ст. 112" in non_working["2028-11-06"]["why"]
    short = {d["date"]: d for d in working["short_days"]}
    assert short["2028-11-03"]["shorter_by"] == "1h"
    assert short["2028-11-03"]["hours"] == ["09:00-13:00", "13:45-15:45"]


def test_a_decree_year_shows_its_working_saturday() -> None:
    [working] = _calendar("--year", "2027")["calendars"]  # type: ignore[misc]
    assert working["known"] is True
    assert [d["date"] for d in working["working_weekend_days"]] == ["2027-02-20"]
    assert "2027-02-22" in {d["date"] for d in working["non_working"]}


def test_the_table_and_a_department() -> None:
    result = runner.invoke(
        app, ["calendar", "-c", str(EXAMPLE), "--year", "2028", "--department", "health"], env={}
    )
    assert result.exit_code == 0, result.output
    assert "working, RU, 2028" in result.output and "2028-01-08" in result.output
    assert "Новогодние" in result.output
    wrong = runner.invoke(
        app, ["calendar", "-c", str(EXAMPLE), "--year", "2028", "--department", "helth"], env={}
    )
    assert wrong.exit_code == 2 and "did you mean 'health'" in wrong.output
