"""Reads the `holidays` package in a child process and prints what the calendars need as JSON.

Run as a script by bot/settings/production.py, never imported by the bot: the package loads
the rules of every country it knows (about 10 MB), while the bot needs a few dates a year.
Importing only the standard library and `holidays`, it runs with `python -I` (no project code).

    python -I holiday_table.py '[["RU", null], ["PL", "14"]]' [names]

prints {"RU|": {"start": 1991, "end": 2100, "years": {"2027": {...}}}, ...}, or for a key
the package does not know {"error": "...", "field": "country" | "subdivision"}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import holidays

# Years worth a table: earlier ones hold no open case, later ones the package does not know.
FIRST_YEAR, LAST_YEAR = 2000, 2100
LANGUAGES = ("ru", "en_US")  # the bot's locales; "" below: the package's own language


def country_table(country: str, subdivision: str | None, named: bool) -> dict[str, Any]:
    """Without `named`, the days off carry no names: the SLA clock needs only the dates."""
    supported = holidays.list_supported_countries()
    if country not in supported:
        return {
            "field": "country",
            "error": f"unknown country {country!r}: give a two-letter code the holidays "
            f"package knows, e.g. RU or PL",
        }
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country][:15]) or "none"
        return {
            "field": "subdivision",
            "error": f"unknown subdivision {subdivision!r} for {country} "
            f"(the holidays package knows: {known})",
        }
    empty = holidays.country_holidays(country, subdiv=subdivision)
    languages: list[str | None] = [x for x in LANGUAGES if x in empty.supported_languages]
    languages = languages if named and languages else [None]
    years: dict[str, Any] = {}
    for year in range(max(FIRST_YEAR, empty.start_year), min(LAST_YEAR, empty.end_year) + 1):
        names: dict[str, dict[str, str]] = {}
        for language in languages:
            table = holidays.country_holidays(
                country, subdiv=subdivision, years=year, language=language, expand=False
            )
            names[language or ""] = {
                day.isoformat(): str(name) if named else ""
                for day, name in table.items()
                if day.year == year
            }
        special = getattr(table, "special_public_holidays", {})
        years[str(year)] = {
            "names": names,
            "weekend_workdays": sorted(
                day.isoformat()
                for day in getattr(table, "weekend_workdays", ())
                if day.year == year
            ),
            "decree": year in special,
            "swaps": _swaps(special.get(year, ())),
        }
    return {"start": empty.start_year, "end": empty.end_year, "years": years}


def _swaps(entries: Any) -> list[list[int]]:
    """A decree's swapped days as the package tabulates them: (month, day, from month,
    from day[, from year]); other shapes (named special holidays) are left out."""
    if entries and isinstance(entries[0], int):
        entries = (entries,)
    return [
        list(entry)
        for entry in entries
        if len(entry) in (4, 5) and all(isinstance(n, int) for n in entry)
    ]


def main(request: str, named: bool) -> None:
    tables = {
        f"{country}|{subdivision or ''}": country_table(country, subdivision, named)
        for country, subdivision in json.loads(request)
    }
    json.dump(tables, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], named=sys.argv[2:] == ["names"])
