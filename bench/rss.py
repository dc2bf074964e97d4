"""Resident memory of the services under a long load (issue 22: "every service's RSS flat,
±10 %, over 200,000 requests").

``bench/run.py --rss-requests N`` drives the full path with wrk in chunks and, between chunks,
reads each service's VmRSS from /proc (the process and any children it started). The first
sample is taken after a warm-up (caches filled, pools and lanes open, the heap frozen); every
later sample must stay within the tolerance of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERVICES = ("gateway", "auth", "relay", "billing")
TOLERANCE = 0.10


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def vm_rss_kib(pid: int) -> int | None:
    """VmRSS of one process in KiB (Linux /proc), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def tree_rss_kib(pid: int) -> int | None:
    """VmRSS of a process plus its descendants (a service that forks workers counts whole)."""
    own = vm_rss_kib(pid)
    if own is None:
        return None
    total, todo = own, _children(pid)
    while todo:
        child = todo.pop()
        total += vm_rss_kib(child) or 0
        todo += _children(child)
    return total


@dataclass(frozen=True, slots=True)
class RssSample:
    requests: int  # gateway 2xx responses so far, warm-up included
    rss_kib: dict[str, int]


def sample(requests: int, pids: dict[str, int]) -> RssSample:
    rss = {}
    for name, pid in pids.items():
        kib = tree_rss_kib(pid)
        if kib is not None:
            rss[name] = kib
    return RssSample(requests, rss)


def change(base: int, now: int) -> float:
    return (now - base) / base if base else 0.0


def table(samples: list[RssSample], names: tuple[str, ...] = SERVICES) -> str:
    """RSS in MiB per service at each sample; the first row is the post-warm-up baseline."""
    lines = [
        "| requests | " + " | ".join(f"{n} MiB" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    base = samples[0].rss_kib if samples else {}
    for s in samples:
        cells = []
        for n in names:
            kib = s.rss_kib.get(n)
            if kib is None:
                cells.append("-")
            elif s is samples[0]:
                cells.append(f"{kib / 1024:.1f}")
            else:
                cells.append(f"{kib / 1024:.1f} ({change(base.get(n, 0), kib):+.1%})")
        lines.append(f"| {s.requests:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(
    samples: list[RssSample], names: tuple[str, ...] = SERVICES, tolerance: float = TOLERANCE
) -> tuple[list[str], bool]:
    """One line per service: the largest departure from the baseline over every later
    sample, the end's change, and met / NOT met; and whether every service met it."""
    out, all_met = [], True
    if len(samples) < 2:
        return ["fewer than two samples: nothing to compare"], False
    base = samples[0]
    for n in names:
        if n not in base.rss_kib:
            out.append(f"{n}: no RSS read")
            all_met = False
            continue
        changes = [change(base.rss_kib[n], s.rss_kib.get(n, 0)) for s in samples[1:]]
        worst = max(changes, key=abs)
        met = abs(worst) <= tolerance
        all_met = all_met and met
        out.append(
            f"{n}: {base.rss_kib[n] / 1024:.1f} MiB after warm-up, end {changes[-1]:+.1%},"
            f" largest change {worst:+.1%} (bar ±{tolerance:.0%}: {'met' if met else 'NOT met'})"
        )
    return out, all_met
