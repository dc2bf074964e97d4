"""Bedrock's error answers: status, ``{"message"}`` body and the ``x-amzn-ErrorType`` header
(AWS "Common Errors" and the InvokeModel reference)."""

from __future__ import annotations

from typing import Final

import orjson
from starlette.responses import Response

from unigate_sim.openai.ids import random_id

STATUS_OF: Final[dict[str, int]] = {
    "AccessDeniedException": 403,
    "IncompleteSignatureException": 400,
    "InvalidSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "UnrecognizedClientException": 403,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ServiceQuotaExceededException": 400,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
# Authentication errors come from AWS's front end, the rest from Bedrock itself.
_FRONT_END: Final = frozenset(
    {
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
    }
)


class BedrockError(Exception):
    """An error the simulator answers with, named as AWS names it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = STATUS_OF[kind]

    def response(self) -> Response:
        namespace = "coral.service" if self.kind in _FRONT_END else "bedrock"
        return Response(
            orjson.dumps({"message": self.message}),
            status_code=self.status,
            media_type="application/json",
            headers={
                "x-amzn-ErrorType": f"{self.kind}:http://internal.amazon.com/coral/com.amazon.{namespace}/",
                "x-amzn-RequestId": random_id("", 32),
            },
        )


def malformed(detail: str) -> BedrockError:
    """Bedrock's 400 for a body its schema refuses."""
    return BedrockError(
        "ValidationException",
        f"Malformed input request: {detail}, please reformat your input and try again.",
    )
