"""Turn submissions and observations into per-step figures."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds (nearest-rank), plus the sample count."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": round(rank(50) * 1000, 1),
        "p95": round(rank(95) * 1000, 1),
        "p99": round(rank(99) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


@dataclass
class Submission:
    lead_id: str | None
    due: float  # when the open-loop schedule wanted it sent (epoch s)
    done: float  # when the answer came back
    status: int  # HTTP status; 0 for a transport error
    kind: str = "lead"  # lead | duplicate | activity
    error: str | None = None
    sent: float | None = None  # when the generator handed the request to its connection (epoch s)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Observations:
    """What the observer saw, indexed by lead id."""

    events: dict[str, dict[str, list[tuple[float | None, float | None, float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )  # lead -> stage -> [(ce_time, captured_at, arrival)]
    webhooks: dict[str, list[tuple[float, bool, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # lead -> [(arrival, verified, when the verification finished)]
    unattributed_webhooks: int = 0
    payload_bytes: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )  # stage -> [records, bytes]

    def feed(self, line: str) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return  # a line cut short when the observer stopped
        if rec.get("k") == "ev" and rec.get("lead"):
            self.events[rec["lead"]][rec["stage"]].append((rec["time"], rec["cap"], rec["arr"]))
            if rec.get("sz") is not None:
                sizes = self.payload_bytes[rec["stage"]]
                sizes[0] += 1
                sizes[1] += rec["sz"]
        elif rec.get("k") == "wh":
            if rec.get("lead"):
                self.webhooks[rec["lead"]].append((rec["arr"], bool(rec.get("ok")), rec.get("ver", rec["arr"])))
            else:
                self.unattributed_webhooks += 1

    def reached(self, lead: str, stage: str) -> bool:
        return bool(self.events.get(lead, {}).get(stage))

    def captured_at(self, lead: str) -> float | None:
        for records in self.events.get(lead, {}).values():
            for _time, cap, _arr in records:
                if cap is not None:
                    return cap
        return None

    def first_verified(self, lead: str) -> float | None:
        """When the receiver finished verifying the lead's first webhook that passed verification."""
        return next((ver for _arr, ok, ver in self.webhooks.get(lead, ()) if ok), None)


def send_to_webhook(submissions: list[Submission], obs: Observations) -> list[float]:
    """Seconds from each new lead's request leaving the generator to its webhook verified at the
    receiver: what a user sees, HTTP queueing, capture, the pipeline and the delivery included.
    A repeat fill of an email is left out (its lead's webhook belongs to the first fill)."""
    latencies = []
    for s in submissions:
        if s.kind != "lead" or not s.ok or not s.lead_id or s.sent is None:
            continue
        verified = obs.first_verified(s.lead_id)
        if verified is not None:
            latencies.append(verified - s.sent)
    return latencies


class ObservationTail:
    """Follows the observer's output file as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.obs = Observations()
        self._offset = 0
        self._partial = ""

    def poll(self) -> Observations:
        if not self.path.exists():
            return self.obs
        with self.path.open() as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line:
                self.obs.feed(line)
        return self.obs


def summarize_step(
    name: str,
    rate: float | None,
    submissions: list[Submission],
    window: tuple[float, float],
    obs: Observations,
    stages: tuple[str, ...],
    *,
    end_stage: str = "routed",
    with_webhooks: bool = True,
) -> dict[str, Any]:
    started, ended = window
    leads = [s for s in submissions if s.kind != "activity"]
    activities = [s for s in submissions if s.kind == "activity"]
    accepted = [s for s in leads if s.ok]
    # Figures follow each person once: a repeat fill's lead is the first fill's, already counted.
    lead_ids = sorted({s.lead_id for s in accepted if s.lead_id and s.kind == "lead"})
    errors: dict[str, int] = defaultdict(int)
    for s in submissions:
        if not s.ok:
            errors[f"{s.kind}:{s.status or s.error}"] += 1

    per_stage: dict[str, Any] = {}
    hop_prev: str | None = None
    for stage in stages:
        event_lat: list[float] = []
        seen_lat: list[float] = []
        hop_lat: list[float] = []
        reached = 0
        for lead in lead_ids:
            records = obs.events.get(lead, {}).get(stage)
            if not records:
                continue
            reached += 1
            t, cap, arr = records[0]
            cap = cap if cap is not None else obs.captured_at(lead)
            if cap is None:
                continue
            if t is not None:
                event_lat.append(t - cap)
            seen_lat.append(arr - cap)
            if hop_prev is not None:
                prev = obs.events[lead].get(hop_prev)
                if prev:
                    hop_lat.append(arr - prev[0][2])
        per_stage[stage] = {
            "reached": reached,
            "event_time_since_capture_ms": percentiles(event_lat),
            "observed_since_capture_ms": percentiles(seen_lat),
            "hop_from_previous_ms": percentiles(hop_lat) if hop_prev else None,
        }
        hop_prev = stage

    end = per_stage.get(end_stage, {})
    # A repeat fill can return a lead captured in an earlier step: its routing belongs to that step.
    own = [lead for lead in lead_ids if (obs.captured_at(lead) or started) >= started - 1.0]
    routed_arrivals = [obs.events[lead][end_stage][0][2] for lead in own if obs.reached(lead, end_stage)]

    webhook: dict[str, Any] | None = None
    if with_webhooks:
        wh_lat: list[float] = []
        delivered = 0
        bad_signatures = 0
        for lead in lead_ids:
            deliveries = obs.webhooks.get(lead)
            if not deliveries:
                continue
            delivered += 1
            bad_signatures += sum(1 for _arr, ok, _ver in deliveries if not ok)
            cap = obs.captured_at(lead)
            if cap is not None:
                wh_lat.append(deliveries[0][0] - cap)
        webhook = {
            "delivered": delivered,
            "verified": sum(1 for lead in lead_ids if obs.first_verified(lead) is not None),
            "bad_signatures": bad_signatures,
            "capture_to_webhook_ms": percentiles(wh_lat),
            "send_to_verified_ms": percentiles(send_to_webhook(submissions, obs)),
        }

    # A pipeline that keeps up shows the same latency late in the step as early on; a backlog
    # shows up as latency that grows with every second of the step.
    by_due = sorted((s.due, s.lead_id) for s in accepted if s.lead_id and s.kind == "lead")
    trend: list[float] = []
    for part in (by_due[: len(by_due) // 3], by_due[-(len(by_due) // 3):] if len(by_due) >= 3 else []):
        lat = []
        for _due, lead in part:
            records = obs.events.get(lead, {}).get(end_stage)
            cap = obs.captured_at(lead)
            if records and cap is not None:
                lat.append(records[0][2] - cap)
        trend.append(float(percentiles(lat)["p50"] or 0.0))

    duration = max(ended - started, 1e-9)
    # The rate at which leads came out of the pipeline: at a load it carries, the offered rate; past
    # its capacity, the capacity (the backlog drains at that pace).
    pipeline_span = (max(routed_arrivals) - min(routed_arrivals)) if len(routed_arrivals) > 1 else None
    return {
        "step": name,
        "offered_rate": rate,
        "duration_s": round(duration, 2),
        "offered": len(leads),
        "accepted": len(accepted),
        "distinct_leads": len({s.lead_id for s in accepted if s.lead_id}),
        "new_leads": len(lead_ids),
        "duplicates_posted": sum(1 for s in leads if s.kind == "duplicate"),
        "activities_posted": len(activities),
        "activities_accepted": sum(1 for s in activities if s.ok),
        "errors": dict(errors),
        "achieved_capture_rate": round(len(accepted) / duration, 1),
        "routed": len(routed_arrivals),
        "achieved_routed_rate": round(len(routed_arrivals) / pipeline_span, 1) if pipeline_span else None,
        "capture_http_ms": percentiles([s.done - s.due for s in leads]),
        "capture_to_routed_ms": end.get("event_time_since_capture_ms"),
        "capture_to_routed_observed_ms": end.get("observed_since_capture_ms"),
        "end_latency_trend_ms": {"first_third_p50": trend[0], "last_third_p50": trend[1]},
        "stages": per_stage,
        "webhook": webhook,
        "payload_bytes": {stage: round(total / count) for stage, (count, total) in obs.payload_bytes.items()
                          if count},
    }
