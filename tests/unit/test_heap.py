"""After a service's start, its startup heap is out of the collector's walk."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from unigate.heap import freeze_startup_heap


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfreeze")
def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    kept = [{"i": i} for i in range(1000)]
    freeze_startup_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(gc.is_tracked(o) and o in gc.get_objects() for o in kept[:3])

    class Node:
        def __init__(self) -> None:
            self.me = self

    collected: list[bool] = []
    node = Node()
    weakref.finalize(node, lambda: collected.append(True))
    del node
    gc.collect()
    assert collected == [True]  # cyclic garbage made after the freeze is still collected
