"""Which teams' and reps' rows this process last found held by another transaction past the grace."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class BusyRows:
    """Rows (``team:<id>``, ``rep:<id>``) found held past the grace, with the time (monotonic) until
    which they are presumed still held. A batch that finds only such rows held parks their leads at
    once instead of waiting the grace again, so a team that stays slow costs the other teams' leads one
    grace, not one per batch; the mark goes as soon as any batch of this process gets the row."""

    until: dict[str, float] = field(default_factory=dict)

    def all_known(self, keys: Iterable[str]) -> bool:
        now = time.monotonic()
        return all(self.until.get(key, 0.0) > now for key in keys)

    def mark(self, keys: Iterable[str], seconds: float) -> None:
        until = time.monotonic() + seconds
        for key in keys:
            self.until[key] = until

    def free(self, keys: Iterable[str]) -> None:
        if self.until:
            for key in keys:
                self.until.pop(key, None)
