"""The garbage collector's settings for a serving process.

A service's imports leave about 150,000 objects behind (modules, classes, FastAPI's routes, pydantic's and
SQLAlchemy's schemas) that live as long as the process. CPython's cyclic collector walks all of them in
every full collection, and the events' short-lived dicts and lists trigger one every few seconds under
load: in a quick bench run at 100 leads/s and 'max' (session 20), 13 to 18 full collections took 3.0 s of
routing's CPU, 4.0 s of capture's and 4.8 s of sla's, and the collector as a whole about 20 s of the five
services' CPU.

``gc.freeze()`` once the process has imported everything moves those objects to the permanent
generation, which no collection walks (what the documentation gives it for); a larger first threshold
makes the young collections rarer, so fewer objects are promoted and the older generations fill more
slowly. A run with these settings spent 3.9 s in it, and at 'max' the pipeline routed a quarter more leads
a second (docs/performance.md, session 20). Cycles are still collected, only less often: garbage in
cycles waits for up to ``YOUNG_THRESHOLD`` allocations (a few megabytes at most) instead of 700.
"""

from __future__ import annotations

import gc

# Allocations minus deallocations of tracked objects before a young collection (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
# Young collections before a middle one, and middle ones before a full one (CPython's default: 10, 10).
OLDER_THRESHOLD = 20


def settle_garbage_collector() -> None:
    """Freeze what exists now (call it after the imports and the app are built, just before serving) and
    collect less often from here on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
