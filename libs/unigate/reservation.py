"""How much one request reserves, and the output bound that reservation pays for.

A generating request (chat, completions, Responses, Messages) asks for the cost of its
prompt plus its output cap (the client's limit, else the smallest published limit of the
models its channels call it, never above the operator's ceiling); when less than that is
left, the reservation takes what is left, down to the cost of the prompt plus one output
token, and the request is bounded to the output that covers (:mod:`unigate.output_bound`).
Other endpoints reserve their estimate whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from unigate.output_bound import (
    GENERATING,
    affordable_output,
    known_output_limit,
    limit_to_send,
    output_cap,
    prompt_ratio,
    worst_cost,
)
from unigate.pricing import Price, quota_for
from unigate.v1 import auth_pb2

# One response of a Realtime API session (each is authorized, reserved and billed alone).
REALTIME = "realtime"


@dataclass(frozen=True, slots=True)
class Plan:
    amount: int
    least: int
    # Generating requests only (else cap 0): what bound() needs.
    prompt_tokens: int = 0
    ratio: float = 1.0
    cap: int = 0
    client_max: int = 0
    known_limit: int | None = None
    # What an output token may cost when it is not priced as text (realtime audio).
    output_price: Price | None = None

    def bound(self, price: Price, reserved: int) -> int:
        """The output limit the request goes upstream with, from what ``reserved`` covers
        (0: none, a non-generating request or the model's own limit, see ``limit_to_send``)."""
        if not self.cap:
            return 0
        covered = affordable_output(
            self.output_price or price, self.prompt_tokens, reserved, self.ratio, self.cap
        )
        return limit_to_send(max(covered, 1), self.client_max, self.known_limit)


def plan(
    price: Price,
    req: auth_pb2.AuthorizeRequest,
    *,
    ceiling: int,
    default_completion: int,
    upstream_models: Iterable[str] = (),
) -> Plan:
    """What ``req`` asks to reserve; ``upstream_models`` are the names its candidate channels
    call the model (their published output limits cap the bound)."""
    prompt = max(req.estimated_prompt_tokens, 1)
    if req.endpoint not in GENERATING:
        completion = min(max(req.max_tokens or default_completion, 0), ceiling)
        if req.endpoint == REALTIME:
            return realtime_plan(price, prompt, completion)
        amount = quota_for(price, prompt, completion)
        return Plan(amount, amount)
    ratio = prompt_ratio(price, long_cache_writes=req.long_cache_writes)
    models = {m for m in upstream_models if m} or {req.model}
    client_max = max(req.max_tokens, 0)
    cap = output_cap(models, client_max, ceiling, prompt)
    return Plan(
        amount=worst_cost(price, prompt, cap, ratio),
        least=worst_cost(price, prompt, 1, ratio),
        prompt_tokens=prompt,
        ratio=ratio,
        cap=cap,
        client_max=client_max,
        known_limit=known_output_limit(models),
    )


def realtime_plan(price: Price, prompt: int, cap: int) -> Plan:
    """One realtime response: its prompt and output may be audio, dearer than text, so each
    token is priced at the dearer of the two; it may go down to one output token (a tight
    balance still serves a short answer), and its bound is the output that covers (the
    gateway sends it as the response's ``max_output_tokens``)."""
    out_price = replace(
        price,
        completion_ratio=max(
            price.completion_ratio, price.audio_ratio * price.audio_completion_ratio
        ),
    )
    ratio = max(prompt_ratio(price), price.audio_ratio)
    return Plan(
        amount=worst_cost(out_price, prompt, cap, ratio),
        least=worst_cost(out_price, prompt, 1, ratio),
        prompt_tokens=prompt,
        ratio=ratio,
        cap=cap,
        client_max=cap,
        output_price=out_price,
    )


# A reservation holding more than this share of what was left is lowered to the request's
# real cost the moment it ends (AuthorizeResponse.release_early): a tight balance is then
# spendable by the next request at once, while ample ones cost no extra call.
RELEASE_EARLY_SHARE = 4


def release_early(want: Plan, reserved: int, left: int) -> bool:
    """``left`` 0: not known (granted from the Redis outage budget), nothing to release."""
    return reserved < want.amount or 0 < left < reserved * RELEASE_EARLY_SHARE
