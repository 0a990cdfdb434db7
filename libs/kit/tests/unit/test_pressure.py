"""The CPU pressure consumers and webhook dispatchers batch on, read from PSI files written here."""

from pathlib import Path

import pytest

from leadflow_kit import pressure as pressure_module
from leadflow_kit.pressure import CpuPressure, cpu_shortage


def psi(path: Path, some_total_us: int) -> Path:
    path.write_text(f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some_total_us}\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_share_is_the_stalled_time_over_the_wall_time_since_the_last_read(tmp_path: Path) -> None:
    clock = Clock()
    pressure = CpuPressure(psi(tmp_path / "cpu", 5_000_000), interval=0.5, clock=clock)
    assert pressure.share() == 0.0
    psi(tmp_path / "cpu", 5_600_000)  # 0.6 s stalled ...
    clock.now += 1.0  # ... in 1 s
    assert pressure.share() == 0.6
    psi(tmp_path / "cpu", 5_700_000)
    clock.now += 0.2  # too soon to read again: the last figure stands
    assert pressure.share() == 0.6
    clock.now += 0.3  # 0.1 s stalled in 0.5 s
    assert abs(pressure.share() - 0.2) < 1e-9


def test_the_share_stays_within_0_and_1_and_keeps_its_last_figure_when_the_file_goes(tmp_path: Path) -> None:
    clock = Clock()
    path = psi(tmp_path / "cpu", 0)
    pressure = CpuPressure(path, interval=0.5, clock=clock)
    psi(path, 3_000_000)  # "some" counts wall time once, however many tasks wait: never more than 1
    clock.now += 1.0
    assert pressure.share() == 1.0
    path.unlink()  # a container's cgroup gone
    clock.now += 1.0
    assert pressure.share() == 1.0


def test_the_first_readable_file_is_used_and_none_where_the_kernel_has_no_psi(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("no pressure here\n")
    host = psi(tmp_path / "host", 42)
    found = CpuPressure.find((tmp_path / "missing", broken, host))
    assert found is not None and found.path == host
    assert CpuPressure.find((tmp_path / "missing", broken)) is None


def test_the_cpu_is_short_at_the_threshold_and_never_when_switched_off_or_without_psi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that stays at one total: a share of 0, which is "short" only at a threshold of 0.
    monkeypatch.setattr(pressure_module, "PSI_FILES", (psi(tmp_path / "cpu", 0),))
    assert cpu_shortage(0.0)()
    assert not cpu_shortage(0.5)()
    assert not cpu_shortage(0.0, enabled=False)()
    monkeypatch.setattr(pressure_module, "PSI_FILES", (tmp_path / "missing",))
    assert not cpu_shortage(0.0)()
