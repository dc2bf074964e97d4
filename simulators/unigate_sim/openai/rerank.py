"""``POST /v1/rerank`` — not an OpenAI endpoint, but the Cohere/Jina shape that One API and
New API relay: ``{model, query, documents, top_n, return_documents}``.

A document's relevance score is the share of the query's distinct words it contains
(case-insensitive), so scores are deterministic and in [0, 1]; ties keep input order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.errors import bad_request, invalid_value, missing
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import served_of_kind
from unigate_sim.openai.request_body import requested_model
from unigate_sim.openai.tokens import count_tokens
from unigate_sim.openai.value_checks import (
    as_array,
    as_bool,
    as_int,
    as_str,
    as_strict_object,
)

_RERANK_PARAMETERS: Final = frozenset(
    {
        "model",
        "query",
        "documents",
        "top_n",
        "return_documents",
        "rank_fields",
        "max_chunks_per_doc",
        "max_tokens_per_doc",
    }
)
MAX_DOCUMENTS: Final = 1000
#: Cohere bills one search unit per query and per hundred documents.
_DOCUMENTS_PER_SEARCH_UNIT: Final = 100
_WORD_RE: Final = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool


def _document(value: Any, index: int) -> str:
    if isinstance(value, str):
        return value
    path = f"documents[{index}]"
    return as_str(as_strict_object(value, path, ("text",), ("text",))["text"], f"{path}.text")


def parse_rerank_request(payload: JSONObject, models: Sequence[str]) -> RerankRequest:
    """Validate a ``POST /v1/rerank`` body, with OpenAI's error shapes."""
    model, spec = requested_model(payload, _RERANK_PARAMETERS, models)
    if spec.kind != "rerank":
        raise invalid_value("model", model, served_of_kind(models, "rerank"))
    if "query" not in payload:
        raise missing("query")
    query = as_str(payload["query"], "query")
    if not query.strip():
        raise bad_request("Invalid 'query': the query must not be empty.", "query")
    if "documents" not in payload:
        raise missing("documents")
    raw = as_array(payload["documents"], "documents", min_items=1, max_items=MAX_DOCUMENTS)
    documents = [_document(value, index) for index, value in enumerate(raw)]
    top_n = len(documents)
    if payload.get("top_n") is not None:
        top_n = min(as_int(payload["top_n"], "top_n", minimum=1), len(documents))
    flag = payload.get("return_documents")
    return_documents = flag is not None and as_bool(flag, "return_documents")
    for name in ("max_chunks_per_doc", "max_tokens_per_doc"):
        if payload.get(name) is not None:
            as_int(payload[name], name, minimum=1)
    if payload.get("rank_fields") is not None:
        for index, field in enumerate(as_array(payload["rank_fields"], "rank_fields")):
            as_str(field, f"rank_fields[{index}]")
    return RerankRequest(model, query, documents, top_n, return_documents)


def _words(text: str) -> set[str]:
    return {word.lower() for word in _WORD_RE.findall(text)}


def relevance_score(query: str, document: str) -> float:
    """The share of the query's distinct words that the document contains."""
    wanted = _words(query)
    return len(wanted & _words(document)) / len(wanted) if wanted else 0.0


def render_rerank(request: RerankRequest) -> JSONObject:
    """The ranking: best first, ``top_n`` of them, with usage and Cohere's billed units."""
    scores = [relevance_score(request.query, document) for document in request.documents]
    order = sorted(range(len(scores)), key=lambda index: (-scores[index], index))
    results: list[JSONObject] = []
    for index in order[: request.top_n]:
        result: JSONObject = {"index": index, "relevance_score": scores[index]}
        if request.return_documents:
            result["document"] = {"text": request.documents[index]}
        results.append(result)
    query_tokens = count_tokens(request.query)
    tokens = sum(query_tokens + count_tokens(document) for document in request.documents)
    units = math.ceil(len(request.documents) / _DOCUMENTS_PER_SEARCH_UNIT)
    return {
        "id": random_id("rerank-", 24),
        "model": request.model,
        "results": results,
        "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": units}},
        "usage": {"total_tokens": tokens},
    }
