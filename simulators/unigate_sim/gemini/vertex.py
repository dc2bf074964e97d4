"""The Vertex AI front door (``{region}-aiplatform.googleapis.com``) and Google's OAuth token
endpoint (``oauth2.googleapis.com/token``), in one app.

* ``POST /token`` — the service-account flow
  (https://developers.google.com/identity/protocols/oauth2/service-account#httprest): form
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``. The JWT must be
  RS256, signed by the registered key of the account named by ``iss`` (and ``kid`` when
  given), ``aud`` this endpoint's URL, ``scope`` including cloud-platform, ``iat``/``exp`` at
  most an hour apart and current. Refusals are RFC 6749 ``{"error": "invalid_grant",
  "error_description": "Invalid JWT Signature."}`` and the like (400). A success is
  ``{"access_token", "expires_in", "token_type": "Bearer"}``.
* ``POST .../publishers/anthropic/models/{model}:rawPredict`` / ``:streamRawPredict`` — Claude
  (``vertex_claude``), behind the same token check.
* ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}``
  — ``generateContent``, ``streamGenerateContent``, ``countTokens`` (as the Gemini API's,
  Vertex's body: ``contents``, ``systemInstruction``, ``tools``), ``predict`` for text
  embedding models (``predictions[].embeddings.values`` and ``statistics.token_count``). Needs
  ``Authorization: Bearer <token this app issued and not expired>`` (else 401 UNAUTHENTICATED)
  for an account of that project (else 403 PERMISSION_DENIED); an unknown model is 404
  "Publisher Model ... not found.".

``app.state``: ``sim`` (:class:`SimState`), ``accounts`` (client_email → :class:`Account`,
see :func:`new_service_account`), ``token_requests`` (how many assertions were exchanged),
``issued`` (token → (email, expiry)), ``token_lifetime`` (seconds, 3599 as Google).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate_sim.gemini.errors import GoogleError, invalid
from unigate_sim.gemini.reply import embedding_values
from unigate_sim.gemini.service import (
    SimState,
    count_tokens_answer,
    error_response,
    generate,
    json_body,
    json_response,
)
from unigate_sim.gemini.vertex_claude import serve_claude
from unigate_sim.openai.tokens import count_tokens

CLOUD_PLATFORM: Final = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_MODELS: Final = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash-001")
EMBEDDING_DIMENSIONS: Final = {"text-embedding-005": 768, "gemini-embedding-001": 3072}
CLOCK_SKEW: Final = 300
_MISSING: Final = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_INVALID: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_SHORT_LIVED: Final = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


@dataclass(frozen=True, slots=True)
class Account:
    """A service account the token endpoint knows: its public key only."""

    public_key: rsa.RSAPublicKey
    key_id: str
    project_id: str


def new_service_account(
    project_id: str, token_uri: str, name: str = "unigate-test"
) -> tuple[dict[str, str], Account]:
    """A throwaway service account: its key file JSON (what a channel holds) and what the
    token endpoint registers for it (:func:`register`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_id = secrets.token_hex(20)
    email = f"{name}@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    return info, Account(key.public_key(), key_id, project_id)


def register(app: Starlette, info: dict[str, str], account: Account) -> None:
    """Let the token endpoint accept assertions of ``info``'s account."""
    app.state.accounts[info["client_email"]] = account


def vertex_app_for_key_files(paths: list[str]) -> Starlette:
    """A Vertex simulator accepting the accounts of these key files (``unigate-sim vertex``);
    only their public keys are kept. Their ``token_uri`` must point at this simulator."""
    app = create_vertex_app()
    for path in paths:
        with open(path, "rb") as file:
            info = orjson.loads(file.read())
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SystemExit(f"{path}: not an RSA service account key")
        register(
            app, info, Account(key.public_key(), info.get("private_key_id", ""), info["project_id"])
        )
    return app


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _verify_assertion(app: Starlette, assertion: str, audience: str) -> str:
    """The client_email of a valid assertion; raises :class:`_OAuthError`."""
    pieces = assertion.split(".")
    if len(pieces) != 3:
        raise _OAuthError("invalid_grant", "Invalid JWT: Failed to parse JWT.")
    try:
        header = orjson.loads(_b64url_decode(pieces[0]))
        claims = orjson.loads(_b64url_decode(pieces[1]))
        signature = _b64url_decode(pieces[2])
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _OAuthError("invalid_grant", "Invalid JWT: Failed to parse JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _OAuthError("invalid_grant", "Invalid JWT: Failed to parse JWT.")
    account = app.state.accounts.get(claims.get("iss"))
    if account is None:
        raise _OAuthError("invalid_grant", "Invalid grant: account not found")
    if header.get("alg") != "RS256" or header.get("kid", account.key_id) != account.key_id:
        raise _OAuthError("invalid_grant", "Invalid JWT Signature.")
    try:
        account.public_key.verify(
            signature, f"{pieces[0]}.{pieces[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise _OAuthError("invalid_grant", "Invalid JWT Signature.") from None
    if claims.get("aud") != audience:
        raise _OAuthError(
            "invalid_grant",
            f"Invalid JWT: Failed audience check. The expected audience is {audience}.",
        )
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if (
        not isinstance(iat, int)
        or not isinstance(exp, int)
        or iat > now + CLOCK_SKEW
        or exp <= now - CLOCK_SKEW
        or exp - iat > 3600
        or exp <= iat
    ):
        raise _OAuthError("invalid_grant", _SHORT_LIVED)
    if "sub" in claims and claims["sub"] != claims["iss"]:
        raise _OAuthError(
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not "
            "authorized for any of the scopes requested.",
        )
    scopes = str(claims.get("scope") or "").split()
    if CLOUD_PLATFORM not in scopes:
        raise _OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return str(claims["iss"])


async def _token(request: Request) -> Response:
    app = request.app
    app.state.token_requests += 1
    form = await request.form()
    grant = str(form.get("grant_type") or "")
    try:
        if grant != JWT_BEARER:
            raise _OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
        audience = str(request.url.replace(query=None))
        email = _verify_assertion(app, str(form.get("assertion") or ""), audience)
    except _OAuthError as exc:
        return json_response({"error": exc.error, "error_description": exc.description}, exc.status)
    token = "ya29.sim-" + secrets.token_urlsafe(32)
    lifetime = int(app.state.token_lifetime)
    app.state.issued[token] = (email, time.monotonic() + lifetime)
    return json_response({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def _bearer_account(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise GoogleError(401, _MISSING)
    issued = request.app.state.issued.get(header[7:].strip())
    if issued is None or issued[1] <= time.monotonic():
        raise GoogleError(401, _INVALID)
    account: Account = request.app.state.accounts[issued[0]]
    return account


def _predict(body: Any, model: str) -> Response:
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances:
        raise invalid("instances must be a non-empty list.")
    parameters = body.get("parameters") or {}
    dims = int(parameters.get("outputDimensionality") or EMBEDDING_DIMENSIONS[model])
    predictions = []
    characters = 0
    for i, instance in enumerate(instances):
        content = instance.get("content") if isinstance(instance, dict) else None
        if not isinstance(content, str) or not content:
            raise invalid(f"instances[{i}].content must be a non-empty string.")
        characters += len(content)
        predictions.append(
            {
                "embeddings": {
                    "statistics": {"truncated": False, "token_count": count_tokens(content)},
                    "values": embedding_values(model, content, dims),
                }
            }
        )
    return json_response(
        {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
    )


async def _model_method(request: Request) -> Response:
    state: SimState = request.app.state.sim
    project = request.path_params["project"]
    location = request.path_params["location"]
    model, _, method = request.path_params["target"].partition(":")
    resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
    try:
        if method not in ("generateContent", "streamGenerateContent", "predict", "countTokens"):
            return json_response(
                {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, 404
            )
        account = _bearer_account(request)
        if account.project_id != project:
            raise GoogleError(
                403,
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        embeds = method == "predict"
        if embeds != (model in EMBEDDING_DIMENSIONS) or (
            not embeds and model not in request.app.state.models
        ):
            raise GoogleError(404, f"Publisher Model `{resource}` not found.")
        body = await json_body(request)
        state.calls.append(
            {
                "path": request.url.path,
                "model": model,
                "method": method,
                "body": body,
                "location": location,
            }
        )
        if state.fail_next:
            status, error = state.fail_next.pop(0)
            return json_response(error, status)
        if embeds:
            return _predict(body, model)
        if method == "countTokens":
            return count_tokens_answer(body, vertex=True)
        return generate(body, model, method, request.query_params.get("alt") == "sse")
    except GoogleError as error:
        return error_response(error)


async def _anthropic_method(request: Request) -> Response:
    """Claude's publisher path (``vertex_claude``), behind the same token check."""
    project = request.path_params["project"]
    location = request.path_params["location"]
    model, _, method = request.path_params["target"].partition(":")
    resource = f"projects/{project}/locations/{location}/publishers/anthropic/models/{model}"

    def authorize() -> None:
        if _bearer_account(request).project_id != project:
            raise GoogleError(
                403,
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )

    return await serve_claude(request, resource, model, method, authorize)


def create_vertex_app(models: list[str] | None = None) -> Starlette:
    """A Vertex AI + OAuth token endpoint simulator; register accounts with :func:`register`."""
    app = Starlette(
        routes=[
            Route("/token", _token, methods=["POST"]),
            Route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{target:path}",
                _model_method,
                methods=["POST"],
            ),
            Route(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target:path}",
                _anthropic_method,
                methods=["POST"],
            ),
        ]
    )
    app.state.claude_prompt_cache = set()
    app.state.sim = SimState()
    app.state.models = set(models or DEFAULT_MODELS)
    app.state.accounts = {}
    app.state.issued = {}
    app.state.token_requests = 0
    app.state.token_lifetime = 3599
    return app
