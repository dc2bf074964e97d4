"""The one ending of every stream a relay adapter writes as OpenAI chunks: what the answer
still owes, the usage chunk only when asked for, ``[DONE]`` only when it did not fail, and
always the ``StreamEnd`` with the usage billed."""

from __future__ import annotations

from typing import cast

import aiohttp

from unigate.v1 import auth_pb2, common_pb2, relay_pb2
from unigate_relay.providers.base import CallContext, stream_truncated
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import DONE_FRAME

USAGE = common_pb2.Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)


def context(include_usage: bool) -> CallContext:
    request = relay_pb2.RelayRequest(include_usage=include_usage)
    # No call is made: the session is never used.
    http = cast(aiohttp.ClientSession, None)
    return CallContext(request=request, channel=auth_pb2.Channel(), api_key="", http=http)


def usage_frame(usage: common_pb2.Usage) -> bytes:
    return f"data: usage {usage.total_tokens}\n\n".encode()


def test_a_finished_stream_owes_its_tail_the_usage_asked_for_and_done() -> None:
    for asked, owed in ((True, b"data: usage 7\n\n"), (False, b"")):
        data, end = stream_ending(
            context(asked),
            USAGE,
            usage_frame,
            error=None,
            first_token_ms=5,
            upstream_ms=9,
            tail=b"data: finish\n\n",
        )
        assert data.data == b"data: finish\n\n" + owed + DONE_FRAME
        assert end.end.usage == USAGE and not end.end.HasField("error")
        assert (end.end.first_token_ms, end.end.upstream_ms) == (5, 9)


def test_a_failed_stream_ends_with_its_error_and_usage_only() -> None:
    (end,) = stream_ending(
        context(True),
        USAGE,
        usage_frame,
        error=stream_truncated(),
        first_token_ms=5,
        upstream_ms=9,
        tail=b"data: finish\n\n",
    )
    assert end.end.error.error.code == "upstream_stream_truncated"
    assert end.end.usage == USAGE
