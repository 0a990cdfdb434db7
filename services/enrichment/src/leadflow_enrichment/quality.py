"""The data-quality report: what the fills of each form and source looked like, bucket by bucket. No I/O.

The store counts the fills of each (form, source, bucket); this module folds those counts into the
grouping asked for and turns them into rates. Every rate is over the group's fills in the bucket, except
the provider's success rate, which is over the fills that asked the provider (none asked: no rate).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from leadflow_contracts import LeadContact
from leadflow_kit import csvexport
from leadflow_kit.csvexport import Cell

GroupBy = Literal["form", "source"]
Interval = Literal["day", "week", "month"]
ALL = "(all)"
OTHER_SOURCES = "(other)"
# The fields a form can ask for, in the contract's order: completeness is reported for each.
CONTACT_FIELDS: tuple[str, ...] = tuple(LeadContact.model_fields)
# The quality reasons a report rate counts, by the rate's name.
FLAGS = {
    "invalid_email": "invalid_email",
    "invalid_phone": "invalid_phone",
    "free_email": "free_email",
    "disposable_email": "disposable_email",
    "role_address": "role_address",
}
PROVIDER_SUCCESSES = ("answered", "not_found", "cached")


@dataclass(frozen=True)
class FillCounts:
    """How many fills of one (form, source, bucket) had each property."""

    form: str
    source: str
    bucket: datetime | None
    fills: int = 0
    duplicates: int = 0
    invalid_email: int = 0
    invalid_phone: int = 0
    free_email: int = 0
    disposable_email: int = 0
    role_address: int = 0
    account_matched: int = 0
    provider_lookups: int = 0
    provider_successes: int = 0
    # Field name -> fills in which it was given (not blank).
    filled: dict[str, int] = field(default_factory=dict)

    def plus(self, other: FillCounts) -> FillCounts:
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name)
                  for f in fields(self) if f.type == "int"}
        filled = {name: self.filled.get(name, 0) + other.filled.get(name, 0) for name in CONTACT_FIELDS}
        return replace(self, filled=filled, **summed)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(counts: FillCounts) -> dict[str, Any]:
    """The report's figures for one group and bucket."""
    fills = counts.fills
    return {
        "fills": fills,
        "duplicates": counts.duplicates,
        "duplicate_rate": _rate(counts.duplicates, fills),
        **{f"{name}_rate": _rate(getattr(counts, name), fills) for name in FLAGS},
        "account_match_rate": _rate(counts.account_matched, fills),
        "provider_lookups": counts.provider_lookups,
        "provider_success_rate": _rate(counts.provider_successes, counts.provider_lookups),
        "completeness": {name: _rate(counts.filled.get(name, 0), fills) for name in CONTACT_FIELDS},
    }


def gauge_ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The rates of :func:`figures` as the ratio gauge's ``figure`` label names them (a rate without a
    whole, the provider's when no fill asked it, has no series)."""
    rates = {name.removesuffix("_rate"): figures[name] for name in RATE_COLUMNS}
    rates["provider_success"] = figures["provider_success_rate"]
    return {name: value for name, value in rates.items() if value is not None}


def fold(counts: Iterable[FillCounts], key: tuple[str, ...]) -> list[FillCounts]:
    """The counts summed per ``key`` (of "form", "source", "bucket"); what the key leaves out becomes ALL
    (a bucket: None), in the order of the key's values."""
    folded: dict[tuple[Any, ...], FillCounts] = {}
    for c in counts:
        kept = replace(c, form=c.form if "form" in key else ALL, source=c.source if "source" in key else ALL,
                       bucket=c.bucket if "bucket" in key else None)
        at = (kept.form, kept.source, kept.bucket)
        folded[at] = folded[at].plus(kept) if at in folded else kept
    return [folded[at] for at in sorted(folded, key=lambda at: (at[0], at[1], at[2] or datetime.min))]


def quality_report(counts: Sequence[FillCounts], start: datetime, end: datetime, group_by: GroupBy | None,
                   interval: Interval | None) -> dict[str, Any]:
    """One row per group and bucket (the whole window when no interval), and the window's total."""
    key = (*(("form",) if group_by == "form" else ("source",) if group_by == "source" else ()),
           *(("bucket",) if interval else ()))
    rows = [{"group": _group(c, group_by), "bucket": c.bucket, **figures(c)} for c in fold(counts, key)]
    total = fold(counts, ())
    return {
        "from": start, "to": end, "group_by": group_by, "interval": interval, "rows": rows,
        "total": {"group": ALL, "bucket": None, **figures(total[0] if total else FillCounts(ALL, ALL, None))},
    }


def _group(counts: FillCounts, group_by: GroupBy | None) -> str:
    return counts.form if group_by == "form" else counts.source if group_by == "source" else ALL


def by_form_and_source(counts: Sequence[FillCounts], sources: int) -> list[FillCounts]:
    """Per form and source for the gauges: the ``sources`` sources with the most fills keep their name, the
    rest (UTM values anyone can make up) count as OTHER_SOURCES, so the labels stay few."""
    per_source = {c.source: c.fills for c in fold(counts, ("source",))}
    kept = set(sorted(per_source, key=lambda s: (-per_source[s], s))[:sources])
    named = [c if c.source in kept else replace(c, source=OTHER_SOURCES) for c in counts]
    return fold(named, ("form", "source"))


RATE_COLUMNS = ("duplicate_rate", *(f"{name}_rate" for name in FLAGS), "account_match_rate")
CSV_COLUMNS = ("group", "bucket", "fills", "duplicates", *RATE_COLUMNS, "provider_lookups", "provider_success_rate",
               *(f"completeness_{name}" for name in CONTACT_FIELDS))


def to_csv(report: dict[str, Any]) -> str:
    """The JSON's rows, then its total; a rate without fills to count is an empty cell."""
    rows: list[list[Cell]] = []
    for row in [*report["rows"], report["total"]]:
        bucket = row["bucket"]
        rows.append([row["group"], bucket.isoformat() if bucket else "", row["fills"], row["duplicates"],
                     *(_cell(row[name]) for name in RATE_COLUMNS), row["provider_lookups"],
                     _cell(row["provider_success_rate"]),
                     *(_cell(row["completeness"][name]) for name in CONTACT_FIELDS)])
    return csvexport.to_csv(CSV_COLUMNS, rows)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
