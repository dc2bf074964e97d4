"""A strict simulator of the AWS Bedrock runtime: Anthropic's Claude through InvokeModel, the
other families (Llama, Mistral, Nova, Cohere, Jamba: ``converse.CONVERSE_MODELS``) through
Converse and ConverseStream (``converse``).

Faithful to AWS's references: ``POST /model/{modelId}/invoke`` (the Messages answer as JSON,
with the ``x-amzn-bedrock-*-token-count`` headers) and ``/invoke-with-response-stream``
(``application/vnd.amazon.eventstream``: one ``chunk`` event per Anthropic stream event,
``{"bytes": base64(event)}``, the last carrying ``amazon-bedrock-invocationMetrics``); every
request's SigV4 signature recomputed and compared (``sigv4``); bodies checked as Bedrock
checks them (``anthropic_version: "bedrock-2023-05-31"``, no ``model``, no ``stream``), then
as Anthropic's API does (the Anthropic simulator's validation, answer and usage); errors as
``{"message"}`` with ``x-amzn-ErrorType``.

``create_bedrock_app`` returns a Starlette app whose ``state`` tests inspect and steer:

* ``calls`` — per correctly signed request: ``{"path", "model_id", "headers", "body",
  "status", "usage"}`` (``usage``: the Anthropic usage object the answer reported, or
  Converse's ``{"inputTokens", "outputTokens", "totalTokens"}``);
* ``fail_next`` — :class:`BedrockError` answers for the next signed requests;
* ``stream_exceptions`` — :class:`StreamException`: a stream broken off by an exception event;
* ``keys`` (access key id → :class:`Key`), ``region``, ``models``, ``now`` (the server's clock,
  for signatures that are too old) and ``prompt_cache``.
"""

from unigate_sim.bedrock.app import StreamException, create_bedrock_app
from unigate_sim.bedrock.converse import CONVERSE_MODELS
from unigate_sim.bedrock.errors import BedrockError
from unigate_sim.bedrock.eventstream import chunk_event, encode_message, exception_event
from unigate_sim.bedrock.models import MODEL_IDS
from unigate_sim.bedrock.sigv4 import Key, Received, verify

__all__ = [
    "CONVERSE_MODELS",
    "MODEL_IDS",
    "BedrockError",
    "Key",
    "Received",
    "StreamException",
    "chunk_event",
    "create_bedrock_app",
    "encode_message",
    "exception_event",
    "verify",
]
