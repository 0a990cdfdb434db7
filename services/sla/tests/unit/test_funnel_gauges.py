"""The funnel gauges keep the sources and campaigns with the most leads by name and fold the rest."""

from __future__ import annotations

from leadflow_sla.domain import FUNNEL_STAGES
from leadflow_sla.funnel_gauges import OTHER, top_named


def stages(captured: int, mql: int = 0, converted: int = 0) -> dict[str, int]:
    counts = dict.fromkeys(FUNNEL_STAGES, 0)
    counts.update(captured=captured, mql=mql, converted=converted)
    return counts


def test_the_busiest_names_stay_and_the_rest_is_summed_as_other():
    named = top_named([("google", stages(5, 2)), ("spam-1", stages(1, 1)), ("linkedin", stages(3, 1, 1)),
                       ("google", stages(2, 1)), ("spam-2", stages(1))], keep=2)
    assert named == {"google": stages(7, 3), "linkedin": stages(3, 1, 1), OTHER: stages(2, 1)}


def test_nothing_kept_by_name_is_all_other():
    assert top_named([("google", stages(5, 2))], keep=0) == {OTHER: stages(5, 2)}
