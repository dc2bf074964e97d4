"""bench/run.py's helpers: the memory bar's arithmetic and /proc reading (bench/rss.py) and
the results files that keep earlier runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import rss
import run


def samples(*rows: tuple[int, dict[str, int]]) -> list[rss.RssSample]:
    return [rss.RssSample(n, kib) for n, kib in rows]


def test_flat_within_tolerance_is_met() -> None:
    s = samples((20_000, {"gateway": 100_000}), (40_000, {"gateway": 109_000}))
    lines, met = rss.verdicts(s, names=("gateway",))
    assert met
    assert "met" in lines[0] and "NOT" not in lines[0]
    assert "+9.0%" in lines[0]


def test_growth_in_the_middle_fails_even_if_the_end_is_back() -> None:
    s = samples(
        (20_000, {"auth": 100_000}),
        (40_000, {"auth": 111_000}),
        (60_000, {"auth": 101_000}),
    )
    lines, met = rss.verdicts(s, names=("auth",))
    assert not met
    assert "largest change +11.0%" in lines[0] and "end +1.0%" in lines[0]


def test_a_shrinking_service_beyond_tolerance_fails() -> None:
    s = samples((0, {"relay": 100_000}), (1, {"relay": 85_000}))
    _, met = rss.verdicts(s, names=("relay",))
    assert not met


def test_a_service_without_reading_or_too_few_samples_is_not_met() -> None:
    assert not rss.verdicts(samples((0, {"gateway": 1})), names=("gateway",))[1]
    s = samples((0, {"gateway": 1}), (1, {"gateway": 1}))
    assert not rss.verdicts(s, names=("gateway", "billing"))[1]


def test_table_shows_mib_and_change_from_the_first_sample() -> None:
    s = samples((20_000, {"billing": 51_200}), (40_000, {"billing": 56_320}))
    text = rss.table(s, names=("billing",))
    assert "| 20,000 | 50.0 |" in text
    assert "| 40,000 | 55.0 (+10.0%) |" in text


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_tree_rss_counts_children() -> None:
    own = rss.vm_rss_kib(os.getpid())
    assert own is not None and own > 0
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        # The child is counted once it has started (its VmRSS readable).
        while rss.vm_rss_kib(child.pid) in (None, 0):
            pass
        tree = rss.tree_rss_kib(os.getpid())
        assert tree is not None and tree > rss.vm_rss_kib(os.getpid())  # type: ignore[operator]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert rss.vm_rss_kib(child.pid) is None
    assert rss.tree_rss_kib(child.pid) is None


def results(date: str, figure: str) -> str:
    return f"# Results\n\nWhat this is.\n\n## {date}\n\n- load: 1\n\n| a |\n|---|\n| {figure} |\n"


def test_results_keep_earlier_runs_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    run.write_keeping_history(path, results("2026-01-01 10:00 UTC", "1"))
    run.write_keeping_history(path, results("2026-01-02 10:00 UTC", "2"))
    run.write_keeping_history(path, results("2026-01-03 10:00 UTC", "3"))
    text = path.read_text()
    assert text.count("# Results") == 1 and text.count("What this is.") == 1
    dates = [line for line in text.splitlines() if line.startswith("## ")]
    assert dates == [
        "## 2026-01-03 10:00 UTC",
        "## 2026-01-02 10:00 UTC",
        "## 2026-01-01 10:00 UTC",
    ]
    # Each section keeps its own figures.
    assert text.index("| 3 |") < text.index("| 2 |") < text.index("| 1 |")


def test_results_keep_at_most_the_given_number_of_runs(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    for day in range(1, 6):
        run.write_keeping_history(path, results(f"2026-01-0{day} 10:00 UTC", str(day)), keep=3)
    dates = [line for line in path.read_text().splitlines() if line.startswith("## ")]
    assert dates == [
        "## 2026-01-05 10:00 UTC",
        "## 2026-01-04 10:00 UTC",
        "## 2026-01-03 10:00 UTC",
    ]


class _Upstream:
    url = "http://127.0.0.1:9"


def test_other_gateways_not_installed_are_skipped_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import other_gateways

    monkeypatch.setattr(other_gateways, "LITELLM_BIN", tmp_path / "none" / "litellm")
    monkeypatch.setattr(other_gateways, "PORTKEY_SERVER", tmp_path / "none" / "start-server.js")
    args = run.parse_args(["--compare", "litellm,portkey"])
    started: list[other_gateways.OtherGateway] = []
    notes = run.start_others(args, _Upstream(), tmp_path, started)  # type: ignore[arg-type]
    assert started == []
    assert notes == [
        other_gateways.NOT_INSTALLED.format(name="litellm"),
        other_gateways.NOT_INSTALLED.format(name="portkey"),
    ]
    assert "litellm is not installed" in capsys.readouterr().out


def test_compare_takes_known_gateways_or_none() -> None:
    assert run.parse_args([]).compare_list == ["litellm", "portkey"]
    assert run.parse_args(["--compare", "none"]).compare_list == []
    assert run.parse_args(["--compare", "portkey"]).compare_list == ["portkey"]
    with pytest.raises(SystemExit):
        run.parse_args(["--compare", "kong"])
