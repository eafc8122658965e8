"""Dates named in a question ("in September 2023", "le 5 mars 2024", "2024-03") become a
date filter, so "what did Peskov say in September 2023?" cites September 2023 articles only.

Only dates that say a month or a day are taken: a year alone ("the 2018 World Cup",
"since 1945") names the subject far more often than the publication date, so it is left
to the retriever. Relative words ("yesterday") are not read either: the latest-news
tie-break (index/search.py) covers "latest", and "yesterday" depends on when the articles
were indexed, not on when the question is asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTH_NAMES = {
    1: "january jan janvier janv januar jän enero ene",
    2: "february feb février fevrier févr fevr februar febrero",
    3: "march mar mars märz maerz marzo",
    4: "april apr avril avr abril",
    5: "may mai mayo",
    6: "june jun juin juni junio",
    7: "july jul juillet juil juli julio",
    8: "august aug août aout agosto",
    9: "september sep sept septembre septiembre setiembre",
    10: "october oct octobre oktober octubre",
    11: "november nov novembre noviembre",
    12: "december dec décembre decembre déc dezember dez diciembre dic",
}
MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names.split()}
_MONTH = "(?P<month>" + "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th|er|e|\.)?"
_PATTERNS = [
    # 5 March 2024, le 1er mars 2024, 5. März 2024, 5 de marzo de 2024
    re.compile(rf"\b{_DAY}\s+(?:de\s+)?{_MONTH}\s+(?:de\s+|del\s+)?{_YEAR}\b", re.I),
    # March 5, 2024 / March 5th 2024
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I),
    # September 2023, septembre 2023, September of 2023, septiembre de 2023
    re.compile(rf"\b{_MONTH}\s+(?:of\s+|de\s+|del\s+)?{_YEAR}\b", re.I),
    # 2024-03-05, 2024-03
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>[01]\d)(?:-(?P<day>[0-3]\d))?\b"),
]


@dataclass(frozen=True)
class Period:
    """A span of publication dates as ISO prefixes (YYYY-MM or YYYY-MM-DD), both included."""

    since: str
    until: str

    def __str__(self) -> str:
        return self.since if self.since == self.until else f"{self.since} – {self.until}"


def _iso(match: re.Match[str]) -> str | None:
    month_text = match.group("month")
    month = int(month_text) if month_text.isdigit() else MONTHS.get(month_text.lower())
    year = int(match.group("year"))
    day_text = match.groupdict().get("day")
    if month is None or not 1 <= month <= 12:
        return None
    if day_text:
        try:
            return date(year, month, int(day_text)).isoformat()
        except ValueError:  # 31 February: not a date
            return None
    return f"{year:04d}-{month:02d}"


def question_period(question: str) -> Period | None:
    """The publication dates a question asks about, or None if it names no month or day.
    Several dates make a range from the earliest to the latest."""
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for pattern in _PATTERNS:  # most specific first; a span is read once
        for match in pattern.finditer(question):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            iso = _iso(match)
            if iso:
                found.append(iso)
                taken.append(match.span())
    if not found:
        return None
    return Period(min(found), max(found))
