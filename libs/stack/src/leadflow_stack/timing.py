"""How a call's time grows with its input, for the tests that prove a parser or normalizer is linear.

Timed as CPU time of this process only (other processes on the machine do not count), with the
garbage collector off (timeit's default), the two sizes interleaved and the best of three kept, so
a slow moment hits both sizes or neither. Linear code grows about 8x from n to 8n characters (less
while a call's fixed cost dominates); a quadratic step about 64x.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

# 8x for linear time, with room for noise; a quadratic step (64x) never fits.
LINEAR_8X = 8 * 3


def repeated(piece: str, length: int) -> str:
    """``piece`` repeated to exactly ``length`` characters."""
    return (piece * (length // len(piece) + 1))[:length]


def _cpu_seconds(call: Callable[[str], object], text: str, number: int) -> float:
    return timeit.Timer(lambda: call(text), timer=time.process_time).timeit(number)


def growth(call: Callable[[str], object], small: str, large: str) -> float:
    """How many times longer ``call(large)`` takes than ``call(small)``."""
    number = 1
    while _cpu_seconds(call, small, number) < 0.002:
        number *= 4
    timings = [(_cpu_seconds(call, small, number), _cpu_seconds(call, large, number)) for _ in range(3)]
    return min(t for _, t in timings) / min(t for t, _ in timings)
