"""The gateway's Gemini-native routes (``/v1beta/models/{model}:…``) with Google's own
``google-genai`` SDK pointed at the gateway: generate, stream, count tokens and embed over a
Gemini channel (passed through to the strict Gemini simulator), an OpenAI channel and an
Anthropic channel (translated by the relay onto their chat and embeddings), each ledger row
equal to the provider's usage; and the client's mistakes and the gateway's refusals as
Google-shaped errors the SDK raises as ``ClientError`` with Google's code and status."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import alias, create_mapped_channel, ledger_row, running
from tests.e2e.test_anthropic import CLAUDE_KEY, SONNET, Claude
from tests.e2e.test_gemini import KEY as GEMINI_KEY
from tests.e2e.test_gemini import Google
from tests.e2e.test_vertex import Vertex, vertex_channel
from unigate_cli.devstack import Stack
from unigate_sim.anthropic import StreamError
from unigate_sim.gemini import prompt_tokens as gemini_prompt_tokens
from unigate_sim.openai import count_tokens

GEMINI, OPENAI, ANTHROPIC = 24, 1, 14


@pytest.fixture
def google() -> Iterator[Google]:
    yield from running(Google())


@pytest.fixture
def claude() -> Iterator[Claude]:
    yield from running(Claude())


@pytest.fixture
def vertex() -> Iterator[Vertex]:
    yield from running(Vertex())


@pytest.fixture(scope="module", autouse=True)
async def warm_stack(stack: Stack, pg: asyncpg.Pool, channel_id: int) -> None:
    """One request through every service first: a cold first request on a loaded machine can
    outlast the reservation timeout, and the sweeper would then settle it first."""
    token = await admin_writes.create_token(pg, user_id=1, name="warm-up", unlimited_quota=True)
    async with httpx.AsyncClient(timeout=60) as warm:
        await warm.post(
            stack.gateway_url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {token.key}"},
        )


def gclient_base(client: genai.Client) -> str:
    base = client._api_client._http_options.base_url
    assert base is not None
    return base.rstrip("/")


def sdk(stack: Stack, key: str) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=stack.gateway_url, api_version="v1beta", timeout=60_000
        ),
    )


@pytest.fixture
def gclient(stack: Stack, tenant: Tenant) -> genai.Client:
    return sdk(stack, tenant.key)


async def channel(
    pg: asyncpg.Pool, secret_key: str, type: int, key: str, url: str, upstream: str
) -> str:
    """A channel of ``type`` serving a fresh model name mapped to ``upstream``."""
    name = alias(f"g{type}")
    await create_mapped_channel(
        pg,
        secret_key,
        type=type,
        name=f"gemini-inbound-{type}",
        key=key,
        base_url=url,
        models={name: upstream},
    )
    return name


def usage_of(meta: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int]:
    assert meta is not None
    return meta.prompt_token_count or 0, meta.candidates_token_count or 0


def ledger_tokens(row: asyncpg.Record) -> tuple[int, int]:
    return row["prompt_tokens"], row["completion_tokens"]


CONFIG = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50)


async def generate_and_stream(
    client: genai.Client, pg: asyncpg.Pool, tenant: Tenant, model: str, text: str
) -> tuple[types.GenerateContentResponse, list[types.GenerateContentResponse]]:
    """generate_content and generate_content_stream; checks each answer's ledger row (the
    tenant's first two) equals the usageMetadata the client was given."""
    answer = await client.aio.models.generate_content(model=model, contents=text, config=CONFIG)
    assert answer.text == f"Echo: {text}"
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    first = await ledger_row(pg, tenant, 1)
    assert ledger_tokens(first) == usage_of(answer.usage_metadata)
    assert first["endpoint"] == "gemini.generate_content" and not first["is_stream"]
    assert not first["estimated"] and first["quota"] > 0 and first["status_code"] == 200

    stream = await client.aio.models.generate_content_stream(
        model=model, contents=text, config=CONFIG
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == f"Echo: {text}"
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    second = await ledger_row(pg, tenant, 2)
    assert ledger_tokens(second) == usage_of(last.usage_metadata) == ledger_tokens(first)
    assert second["is_stream"] and not second["estimated"] and second["status_code"] == 200
    assert second["endpoint"] == "gemini.generate_content"
    return answer, chunks


async def test_sdk_on_a_gemini_channel_passes_through(
    gclient: genai.Client, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await channel(pg, secret_key, GEMINI, GEMINI_KEY, google.url, "gemini-2.5-flash")
    await generate_and_stream(gclient, pg, tenant, model, "hello gemini")
    call = google.state.calls[-1]
    # Passed through to the upstream model, the client's body as sent (the bound aside).
    assert call["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert call["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello gemini"}]}]
    assert call["body"]["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert call["body"]["generationConfig"]["maxOutputTokens"] == 50
    # The ledger's usage is exactly what the simulator reported for what it was sent.
    first = await ledger_row(pg, tenant, 1)
    assert first["prompt_tokens"] == gemini_prompt_tokens(call["body"])
    assert first["completion_tokens"] == count_tokens("Echo: hello gemini")
    assert first["upstream_model"] == "gemini-2.5-flash"

    counted = await gclient.aio.models.count_tokens(model=model, contents="hello gemini")
    assert google.state.calls[-1]["path"] == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert counted.total_tokens == gemini_prompt_tokens(
        {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}
    )
    third = await ledger_row(pg, tenant, 3)
    assert (third["endpoint"], third["prompt_tokens"], third["quota"]) == (
        "gemini.count_tokens",
        0,
        0,
    )

    embedder = await channel(pg, secret_key, GEMINI, GEMINI_KEY, google.url, "text-embedding-004")
    texts = ["the quick brown fox", "jumps"]
    embedded = await gclient.aio.models.embed_content(model=embedder, contents=texts)
    assert embedded.embeddings and len(embedded.embeddings) == 2
    assert all(len(e.values or []) == 768 for e in embedded.embeddings)
    call = google.state.calls[-1]
    assert call["model"] == "text-embedding-004"
    fourth = await ledger_row(pg, tenant, 4)
    assert fourth["endpoint"] in ("gemini.batch_embed_contents", "gemini.embed_content")
    # Gemini reports no tokens for embeddings: counted, and marked so.
    assert fourth["estimated"] and fourth["prompt_tokens"] == sum(count_tokens(t) for t in texts)

    # The single-content method, passed through with its own path and body.
    async with httpx.AsyncClient(timeout=60) as http:
        one = await http.post(
            f"{gclient_base(gclient)}/v1beta/models/{embedder}:embedContent",
            json={"content": {"parts": [{"text": "lazy dog"}]}, "outputDimensionality": 8},
            headers={"x-goog-api-key": tenant.key},
        )
    assert one.status_code == 200, one.text
    assert len(one.json()["embedding"]["values"]) == 8
    assert google.state.calls[-1]["path"] == "/v1beta/models/text-embedding-004:embedContent"
    fifth = await ledger_row(pg, tenant, 5)
    assert (fifth["endpoint"], fifth["prompt_tokens"]) == (
        "gemini.embed_content",
        count_tokens("lazy dog"),
    )

    # The provider's own refusal reaches the client in Google's words and status.
    refusal = {"error": {"code": 400, "message": "Bad thing.", "status": "INVALID_ARGUMENT"}}
    google.state.fail_next.append((400, refusal))
    with pytest.raises(genai_errors.ClientError) as refused:
        await gclient.aio.models.generate_content(model=model, contents="hello gemini")
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    assert refused.value.message == "Bad thing."


async def test_sdk_on_a_vertex_channel(
    gclient: genai.Client, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    model = await vertex_channel(pg, secret_key, vertex, "gemini-2.5-flash")
    await generate_and_stream(gclient, pg, tenant, model, "hello vertex")
    prefix = f"/v1/projects/{vertex.project}/locations/us-central1/publishers/google/models/"
    call = vertex.state.calls[-1]
    assert call["path"] == prefix + "gemini-2.5-flash:streamGenerateContent"
    first = await ledger_row(pg, tenant, 1)
    assert first["prompt_tokens"] == gemini_prompt_tokens(call["body"])

    counted = await gclient.aio.models.count_tokens(model=model, contents="hello vertex")
    assert vertex.state.calls[-1]["path"] == prefix + "gemini-2.5-flash:countTokens"
    assert counted.total_tokens == gemini_prompt_tokens(
        {"contents": [{"role": "user", "parts": [{"text": "hello vertex"}]}]}
    )
    assert (await ledger_row(pg, tenant, 3))["quota"] == 0

    # Vertex embeds through `predict`, whose token counts make the row exact.
    embedder = await vertex_channel(pg, secret_key, vertex, "text-embedding-005")
    texts = ["alpha beta", "gamma"]
    embedded = await gclient.aio.models.embed_content(model=embedder, contents=texts)
    assert embedded.embeddings and len(embedded.embeddings) == 2
    assert vertex.state.calls[-1]["path"] == prefix + "text-embedding-005:predict"
    fourth = await ledger_row(pg, tenant, 4)
    assert not fourth["estimated"] and fourth["prompt_tokens"] == sum(
        count_tokens(t) for t in texts
    )

    # Claude on Vertex speaks Anthropic's protocol: the route is translated onto it.
    claude = await vertex_channel(pg, secret_key, vertex, "claude-3-5-sonnet-20241022")
    answer = await gclient.aio.models.generate_content(model=claude, contents="hello claude")
    assert answer.text == "Echo: hello claude"
    assert vertex.state.calls[-1]["path"].endswith("claude-3-5-sonnet-v2@20241022:rawPredict")
    fifth = await ledger_row(pg, tenant, 5)
    assert ledger_tokens(fifth) == usage_of(answer.usage_metadata)


async def test_sdk_on_an_openai_channel_is_translated(
    gclient: genai.Client,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
) -> None:
    model = await channel(pg, secret_key, OPENAI, SIM_KEY, simulator.url, "gpt-4o-mini")
    answer, _ = await generate_and_stream(gclient, pg, tenant, model, "hello from gemini")
    sent = sim_app.state.calls[-1]["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello from gemini"},
    ]
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 50 and sent["stream"]
    assert answer.usage_metadata and answer.usage_metadata.prompt_token_count
    assert answer.usage_metadata.candidates_token_count == count_tokens("Echo: hello from gemini")

    counted = await gclient.aio.models.count_tokens(model=model, contents="hello from gemini")
    assert counted.total_tokens and counted.total_tokens > 0
    third = await ledger_row(pg, tenant, 3)
    assert (third["endpoint"], third["prompt_tokens"], third["quota"]) == (
        "gemini.count_tokens",
        0,
        0,
    )

    embedder = await channel(
        pg, secret_key, OPENAI, SIM_KEY, simulator.url, "text-embedding-3-small"
    )
    texts = ["one two three", "four"]
    embedded = await gclient.aio.models.embed_content(
        model=embedder, contents=texts, config=types.EmbedContentConfig(output_dimensionality=64)
    )
    assert embedded.embeddings and [len(e.values or []) for e in embedded.embeddings] == [64, 64]
    sent = sim_app.state.calls[-1]["body"]
    assert sent["input"] == texts and sent["dimensions"] == 64
    fourth = await ledger_row(pg, tenant, 4)
    # OpenAI reports the embedding's tokens: the row is exact.
    assert not fourth["estimated"] and fourth["prompt_tokens"] == sum(
        count_tokens(t) for t in texts
    )
    assert fourth["quota"] > 0


async def test_sdk_on_an_anthropic_channel_is_translated(
    gclient: genai.Client, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = await channel(pg, secret_key, ANTHROPIC, CLAUDE_KEY, claude.url, SONNET)
    await generate_and_stream(gclient, pg, tenant, model, "hello claude from gemini")
    sent = claude.calls[-1]
    assert sent["body"]["system"] == "Be brief." and sent["body"]["max_tokens"] == 50
    assert sent["body"]["messages"][-1]["content"] == [
        {"type": "text", "text": "hello claude from gemini"}
    ]

    # A tool call comes back as a functionCall part; its answer goes back as a tool_result.
    weather = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Weather in a city",
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"city": types.Schema(type=types.Type.STRING)},
                    required=["city"],
                ),
            )
        ]
    )
    config = types.GenerateContentConfig(
        tools=[weather],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY
            )
        ),
    )
    called = await gclient.aio.models.generate_content(
        model=model, contents="weather in Oslo?", config=config
    )
    assert called.function_calls and called.function_calls[0].name == "get_weather"
    assert set(called.function_calls[0].args or {}) == {"city"}
    tool = claude.calls[-1]["body"]["tools"][0]
    assert tool["input_schema"]["properties"] == {"city": {"type": "string"}}
    third = await ledger_row(pg, tenant, 3)
    assert ledger_tokens(third) == usage_of(called.usage_metadata)

    counted = await gclient.aio.models.count_tokens(model=model, contents="hello claude")
    assert counted.total_tokens and counted.total_tokens > 0
    fourth = await ledger_row(pg, tenant, 4)
    assert (fourth["endpoint"], fourth["prompt_tokens"], fourth["quota"]) == (
        "gemini.count_tokens",
        0,
        0,
    )
    # A stream the provider breaks off after its first words: the client's last chunk is a
    # Google error object (the SDK raises it), the ledger has the row.
    claude.app.state.stream_errors.append(
        StreamError(after=4, error_type="api_error", message="boom")
    )
    words: list[types.GenerateContentResponse] = []
    with pytest.raises(genai_errors.APIError) as cut:
        broken = await gclient.aio.models.generate_content_stream(
            model=model, contents="cut me off right here"
        )
        async for chunk in broken:
            words.append(chunk)
    assert words and (words[0].text or "").startswith("Echo")
    assert cut.value.code == 502
    assert cut.value.details["error"]["status"] == "UNAVAILABLE"
    fifth = await ledger_row(pg, tenant, 5)
    assert fifth["status_code"] == 502 and fifth["is_stream"]

    # Anthropic has no embeddings: the client's 400, in Google's shape.
    with pytest.raises(genai_errors.ClientError) as refused:
        await gclient.aio.models.embed_content(model=model, contents="embed me")
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"


async def test_client_mistakes_and_refusals_are_google_errors(
    stack: Stack, gclient: genai.Client, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    with pytest.raises(genai_errors.ClientError) as bad_key:
        await sdk(stack, "sk-" + secrets.token_hex(24)).aio.models.generate_content(
            model="gpt-4o-mini", contents="hi"
        )
    assert (bad_key.value.code, bad_key.value.status) == (400, "INVALID_ARGUMENT")
    details = bad_key.value.details["error"]["details"]
    assert details[0]["reason"] == "API_KEY_INVALID"

    with pytest.raises(genai_errors.ClientError) as unknown:
        await gclient.aio.models.generate_content(model="no-such-model-here", contents="hi")
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")

    empty = types.GenerateContentConfig(max_output_tokens=-3)
    with pytest.raises(genai_errors.ClientError) as bad_body:
        await gclient.aio.models.generate_content(model="gpt-4o-mini", contents="hi", config=empty)
    assert (bad_body.value.code, bad_body.value.status) == (400, "INVALID_ARGUMENT")

    # A key whose quota is spent: Google's 429 RESOURCE_EXHAUSTED, nothing sent upstream.
    broke = await admin_writes.create_token(pg, user_id=1, name="broke", remain_quota=0)
    with pytest.raises(genai_errors.ClientError) as exhausted:
        await sdk(stack, broke.key).aio.models.generate_content(model="gpt-4o-mini", contents="hi")
    assert (exhausted.value.code, exhausted.value.status) == (429, "RESOURCE_EXHAUSTED")

    base = stack.gateway_url + "/v1beta/models/gpt-4o-mini"
    async with httpx.AsyncClient(timeout=60) as http:
        missing = await http.post(base + ":generateContent", json={"contents": []})
        assert missing.status_code == 403
        assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
        assert missing.headers["x-request-id"]

        headers = {"x-goog-api-key": tenant.key}
        no_contents = await http.post(base + ":generateContent", json={}, headers=headers)
        assert no_contents.status_code == 400
        assert no_contents.json() == {
            "error": {
                "code": 400,
                "message": "* GenerateContentRequest.contents: contents is not specified",
                "status": "INVALID_ARGUMENT",
            }
        }
        not_json = await http.post(base + ":generateContent", content=b"{", headers=headers)
        assert not_json.status_code == 400 and not_json.json()["error"]["code"] == 400
        no_method = await http.post(base + ":fly", json={}, headers=headers)
        assert no_method.status_code == 404
        assert no_method.json()["error"]["status"] == "NOT_FOUND"
        unknown_path = await http.get(stack.gateway_url + "/v1beta/nowhere", headers=headers)
        assert unknown_path.status_code == 404
        assert unknown_path.json()["error"]["status"] == "NOT_FOUND"


async def test_key_forms_json_array_stream_and_model_listing(
    stack: Stack, gclient: genai.Client, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    ask = {"contents": [{"role": "user", "parts": [{"text": "array please"}]}]}
    url = stack.gateway_url + "/v1/models/gpt-4o-mini"
    async with httpx.AsyncClient(timeout=60) as http:
        # ?key= on the /v1 path, and a Bearer token, both accepted.
        by_query = await http.post(url + f":generateContent?key={tenant.key}", json=ask)
        assert by_query.status_code == 200, by_query.text
        assert by_query.json()["candidates"][0]["content"]["parts"] == [
            {"text": "Echo: array please"}
        ]
        assert by_query.headers["x-request-id"]
        bearer = {"Authorization": f"Bearer {tenant.key}"}
        # Without alt=sse: Google's JSON array of chunks.
        streamed = await http.post(url + ":streamGenerateContent", json=ask, headers=bearer)
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("application/json")
        chunks: list[Any] = orjson.loads(streamed.content)
        assert isinstance(chunks, list) and len(chunks) >= 2
        text = "".join(
            p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
        )
        assert text == "Echo: array please"
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        assert chunks[-1]["usageMetadata"]["promptTokenCount"] > 0
    rows = [await ledger_row(pg, tenant, n) for n in (1, 2)]
    assert [r["request_id"] for r in rows] == [
        by_query.headers["x-request-id"],
        streamed.headers["x-request-id"],
    ]
    last = chunks[-1]["usageMetadata"]
    assert ledger_tokens(rows[1]) == (last["promptTokenCount"], last["candidatesTokenCount"])

    names = [m.name async for m in await gclient.aio.models.list()]
    assert "models/gpt-4o-mini" in names
    found = await gclient.aio.models.get(model="gpt-4o-mini")
    assert found.name == "models/gpt-4o-mini" and found.output_token_limit == 16_384
    with pytest.raises(genai_errors.ClientError) as absent:
        await gclient.aio.models.get(model="not-a-model-of-this-key")
    assert absent.value.code == 404

    # The SDK on api_version v1: the same routes under /v1, whose model listing answers in
    # Google's shape to a Google-keyed request (and stays OpenAI's for a Bearer one).
    v1 = genai.Client(
        api_key=tenant.key,
        http_options=types.HttpOptions(base_url=stack.gateway_url, api_version="v1"),
    )
    assert "models/gpt-4o-mini" in [m.name async for m in await v1.aio.models.list()]
    reply = await v1.aio.models.generate_content(model="gpt-4o-mini", contents="on v1")
    assert reply.text == "Echo: on v1"
    async with httpx.AsyncClient(timeout=60) as http:
        openai_list = await http.get(
            stack.gateway_url + "/v1/models", headers={"Authorization": f"Bearer {tenant.key}"}
        )
        assert openai_list.json()["object"] == "list"
        # A refusal before a JSON-array stream starts is that array's one element.
        refused = await http.post(
            url + ":streamGenerateContent", json={}, headers={"x-goog-api-key": tenant.key}
        )
        assert refused.status_code == 400
        assert refused.json()[0]["error"]["status"] == "INVALID_ARGUMENT"
