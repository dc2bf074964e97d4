"""Noticing that the usage consumer has stopped delivering, and what to do about it.

A replicated JetStream consumer can stop delivering after its leader changes while messages
wait: the client's pulls come back empty for good. nats-server's issues 4189, 5679 and 6469
describe it (fixed in releases after the 2.9 that Debian ships), and the operators' remedy
there is a consumer leader step-down. Billing watches for it itself, because a ledger that
stops is a balance that stops being settled. (What was seen here, in CI, on the three-node
test that kills the stream leader, was first taken for it: 77 messages pending, none
delivered, no pull waiting, for over a minute. Its second sighting, with this watch silent,
pointed to billing's loop having ended instead; ``UsageConsumer.run`` no longer can.)

The signal is the consumer as a whole making no progress, not this process getting nothing
(several billing processes share the consumer, and another may be receiving everything):
after ``after`` seconds without a delivery here, billing looks at the consumer's state, and
again every ``after`` seconds while it stays quiet. It is stuck when two looks in a row find
messages pending, the delivered sequence unmoved, and the consumer not at its limit of
unacknowledged messages (that limit is a legitimate stop: a slow ledger holds them). The first
stuck look re-creates this process's pull subscription (a client that lost its interest); each
one after asks the consumer's leader to step down.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from nats.js.api import ConsumerInfo


class Remedy(enum.Enum):
    RESUBSCRIBE = "resubscribe"
    STEP_DOWN = "step_down"


@dataclass
class StallWatch:
    after: float
    quiet_since: float
    _looked_at: float | None = field(default=None, init=False)
    _delivered: int | None = field(default=None, init=False)
    _stuck_looks: int = field(default=0, init=False)

    def delivered(self, now: float) -> None:
        """Messages reached this process: it is not stuck, and the next look starts afresh."""
        self.quiet_since = now
        self._looked_at = None
        self._delivered = None
        self._stuck_looks = 0

    def due(self, now: float) -> bool:
        """Whether it is time to look at the consumer's state."""
        if now - self.quiet_since < self.after:
            return False
        return self._looked_at is None or now - self._looked_at >= self.after

    def unseen(self, now: float) -> None:
        """The state could not be read at ``now``: look again after another spell."""
        self._looked_at = now

    def judge(self, now: float, info: ConsumerInfo) -> Remedy | None:
        """What to do about the consumer state seen at ``now`` (None: nothing)."""
        self._looked_at = now
        delivered = (info.delivered.stream_seq if info.delivered else 0) or 0
        moved = self._delivered is None or delivered != self._delivered
        self._delivered = delivered
        limit = info.config.max_ack_pending or 0
        at_limit = limit > 0 and (info.num_ack_pending or 0) >= limit
        if moved or not info.num_pending or at_limit:
            self._stuck_looks = 0
            return None
        self._stuck_looks += 1
        return Remedy.RESUBSCRIBE if self._stuck_looks == 1 else Remedy.STEP_DOWN
