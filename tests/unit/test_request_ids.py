"""Request ids: drawn ones are unique and carry their arrival time; derived ones (a Message
Batch's results) are the same for the same parts, and carry the time they are given."""

from __future__ import annotations

from unigate.request_ids import arrived_ms, derived_request_id, issuer, new_request_id


def test_drawn_ids_are_unique_and_carry_their_time() -> None:
    ids = {new_request_id(now_ms=1_796_000_000_000) for _ in range(1000)}
    assert len(ids) == 1000
    assert {arrived_ms(i) for i in ids} == {1_796_000_000_000}


def test_derived_ids_depend_on_their_parts_only() -> None:
    first = derived_request_id(1_796_000_000_123, "msgbatch_01", "req-1")
    assert first == derived_request_id(1_796_000_000_123, "msgbatch_01", "req-1")
    assert arrived_ms(first) == 1_796_000_000_123 and issuer(first) is not None
    assert len(first) == len(new_request_id())
    others = {
        derived_request_id(1_796_000_000_123, "msgbatch_01", "req-2"),
        derived_request_id(1_796_000_000_123, "msgbatch_02", "req-1"),
        # Where one part ends and the next begins counts.
        derived_request_id(1_796_000_000_123, "msgbatch_0", "1req-1"),
    }
    assert first not in others and len(others) == 3
