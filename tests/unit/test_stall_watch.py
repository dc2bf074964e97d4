"""The billing consumer's stall watch: when the consumer as a whole is stuck, and what to do."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.api import ConsumerConfig, ConsumerInfo, SequenceInfo

from unigate_billing.stall import Remedy, StallWatch


def info(delivered: int, pending: int, ack_pending: int = 0, limit: int = 1000) -> ConsumerInfo:
    return ConsumerInfo(
        name="billing",
        stream_name="USAGE",
        created=datetime(2026, 12, 6, tzinfo=UTC),
        config=ConsumerConfig(max_ack_pending=limit),
        delivered=SequenceInfo(consumer_seq=delivered, stream_seq=delivered),
        num_pending=pending,
        num_ack_pending=ack_pending,
    )


def test_looks_only_after_a_quiet_spell_and_then_once_per_spell() -> None:
    watch = StallWatch(after=10.0, quiet_since=100.0)
    assert not watch.due(109.9)
    assert watch.due(110.0)
    assert watch.judge(110.0, info(5, 3)) is None  # the first look has nothing to compare
    assert not watch.due(119.0)
    assert watch.due(120.0)
    # A delivery here starts the spell again.
    watch.delivered(125.0)
    assert not watch.due(134.0)
    assert watch.due(135.0)


def test_a_stuck_consumer_is_resubscribed_then_its_leader_stepped_down() -> None:
    watch = StallWatch(after=1.0, quiet_since=0.0)
    assert watch.judge(1.0, info(5, 3)) is None
    assert watch.judge(2.0, info(5, 3)) is Remedy.RESUBSCRIBE
    assert watch.judge(3.0, info(5, 3)) is Remedy.STEP_DOWN
    assert watch.judge(4.0, info(5, 4)) is Remedy.STEP_DOWN
    # It moved (another process, or the new leader): not stuck, and the count starts over.
    assert watch.judge(5.0, info(9, 1)) is None
    assert watch.judge(6.0, info(9, 1)) is Remedy.RESUBSCRIBE


def test_a_consumer_with_nothing_pending_or_at_its_ack_limit_is_not_stuck() -> None:
    watch = StallWatch(after=1.0, quiet_since=0.0)
    assert watch.judge(1.0, info(5, 0)) is None
    assert watch.judge(2.0, info(5, 0)) is None
    # At the limit of unacknowledged messages it waits for acks (a slow ledger): legitimate.
    assert watch.judge(3.0, info(5, 7, ack_pending=1000)) is None
    assert watch.judge(4.0, info(5, 7, ack_pending=1000)) is None
    assert watch.judge(5.0, info(5, 7, ack_pending=999)) is Remedy.RESUBSCRIBE


def test_a_look_that_could_not_read_the_state_waits_a_spell() -> None:
    watch = StallWatch(after=1.0, quiet_since=0.0)
    watch.unseen(1.0)
    assert not watch.due(1.5)
    assert watch.due(2.0)


def test_a_delivery_forgets_the_stuck_looks() -> None:
    watch = StallWatch(after=1.0, quiet_since=0.0)
    watch.judge(1.0, info(5, 3))
    assert watch.judge(2.0, info(5, 3)) is Remedy.RESUBSCRIBE
    watch.delivered(2.5)
    assert watch.judge(3.5, info(5, 3)) is None
    assert watch.judge(4.5, info(5, 3)) is Remedy.RESUBSCRIBE
