"""The data-quality report's arithmetic: folding counts into groups and buckets, rates, CSV, gauge labels."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from leadflow_enrichment import quality
from leadflow_enrichment.quality import ALL, OTHER_SOURCES, FillCounts

MON = datetime(2026, 11, 23, tzinfo=UTC)
NEXT_MON = datetime(2026, 11, 30, tzinfo=UTC)


def counts() -> list[FillCounts]:
    return [
        FillCounts("demo", "google", MON, fills=3, duplicates=1, invalid_phone=1, account_matched=2,
                   provider_lookups=2, provider_successes=1, filled={"email": 3, "phone": 2}),
        FillCounts("demo", "linkedin", MON, fills=1, free_email=1, role_address=1, filled={"email": 1}),
        FillCounts("demo", "google", NEXT_MON, fills=2, invalid_email=2, filled={"email": 2, "phone": 2}),
        FillCounts("webinar", "google", NEXT_MON, fills=4, disposable_email=1, account_matched=4,
                   filled={"email": 4, "company": 3}),
    ]


def test_by_form_and_week_each_row_has_the_rates_of_its_own_fills():
    report = quality.quality_report(counts(), MON, NEXT_MON, "form", "week")
    rows = {(r["group"], r["bucket"]): r for r in report["rows"]}
    assert list(rows) == [("demo", MON), ("demo", NEXT_MON), ("webinar", NEXT_MON)]
    first = rows["demo", MON]
    assert first["fills"] == 4 and first["duplicates"] == 1
    assert first["duplicate_rate"] == 0.25
    assert first["invalid_phone_rate"] == 0.25
    assert first["free_email_rate"] == 0.25 and first["role_address_rate"] == 0.25
    assert first["account_match_rate"] == 0.5
    assert first["provider_lookups"] == 2 and first["provider_success_rate"] == 0.5
    assert first["completeness"]["email"] == 1.0 and first["completeness"]["phone"] == 0.5
    assert first["completeness"]["company"] == 0.0
    assert rows["demo", NEXT_MON]["invalid_email_rate"] == 1.0
    # No fill asked the provider: no success rate, rather than a made-up 0 or 1.
    assert rows["demo", NEXT_MON]["provider_success_rate"] is None
    assert rows["webinar", NEXT_MON]["disposable_email_rate"] == 0.25


def test_the_total_is_the_window_whatever_the_grouping():
    for group_by in ("form", "source", None):
        total = quality.quality_report(counts(), MON, NEXT_MON, group_by, "day")["total"]
        assert (total["group"], total["bucket"], total["fills"]) == (ALL, None, 10)
        assert total["invalid_email_rate"] == 0.2
        assert total["account_match_rate"] == 0.6
        assert total["completeness"]["company"] == 0.3


def test_by_source_over_the_whole_window_sums_the_forms():
    report = quality.quality_report(counts(), MON, NEXT_MON, "source", None)
    assert [(r["group"], r["bucket"], r["fills"]) for r in report["rows"]] == [("google", None, 9),
                                                                              ("linkedin", None, 1)]
    google = report["rows"][0]
    assert google["completeness"]["phone"] == round(4 / 9, 4)


def test_an_empty_window_has_a_total_without_rates():
    report = quality.quality_report([], MON, NEXT_MON, "form", "month")
    assert report["rows"] == []
    assert report["total"]["fills"] == 0
    assert report["total"]["duplicate_rate"] is None
    assert report["total"]["completeness"]["email"] is None


def test_csv_holds_the_json_rows_and_total():
    report = quality.quality_report(counts(), MON, NEXT_MON, "form", "week")
    rows = list(csv.DictReader(io.StringIO(quality.to_csv(report))))
    assert [(r["group"], r["bucket"]) for r in rows] == [
        ("demo", MON.isoformat()), ("demo", NEXT_MON.isoformat()), ("webinar", NEXT_MON.isoformat()), (ALL, "")]
    for row, expected in zip(rows, [*report["rows"], report["total"]], strict=True):
        assert int(row["fills"]) == expected["fills"]
        assert float(row["invalid_phone_rate"]) == expected["invalid_phone_rate"]
        assert float(row["completeness_email"]) == expected["completeness"]["email"]
        success = expected["provider_success_rate"]
        assert row["provider_success_rate"] == ("" if success is None else f"{success:g}")


def test_a_group_named_like_a_formula_is_written_as_text():
    report = quality.quality_report([FillCounts("demo", "=HYPERLINK(1)", None, fills=1)], MON, NEXT_MON,
                                    "source", None)
    assert "'=HYPERLINK(1)" in quality.to_csv(report)


def test_gauges_keep_the_busiest_sources_by_name_and_fold_the_rest():
    many = [FillCounts("demo", f"utm-{n}", None, fills=n + 1, invalid_email=1) for n in range(5)]
    folded = quality.by_form_and_source(many, sources=2)
    assert [(c.form, c.source, c.fills, c.invalid_email) for c in folded] == [
        ("demo", OTHER_SOURCES, 1 + 2 + 3, 3), ("demo", "utm-3", 4, 1), ("demo", "utm-4", 5, 1)]


def test_gauge_ratios_name_the_figures_and_leave_out_a_rate_without_fills():
    ratios = quality.gauge_ratios(quality.figures(FillCounts("demo", "google", None, fills=4, invalid_email=1,
                                                             account_matched=3)))
    assert ratios["invalid_email"] == 0.25
    assert ratios["account_match"] == 0.75
    assert ratios["duplicate"] == 0.0
    assert "provider_success" not in ratios
