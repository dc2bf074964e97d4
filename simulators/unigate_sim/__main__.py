"""Command line entry point (``unigate-sim``, or ``python -m unigate_sim``).

``python -m unigate_sim openai --host 127.0.0.1 --port 8900 --api-key sk-sim-... [--models a,b]``
serves the OpenAI simulator until interrupted;
``python -m unigate_sim azure --api-key KEY [--deployments gpt-35-turbo=gpt-3.5-turbo,...]``
serves the Azure OpenAI one (``unigate_sim.azure``);
``python -m unigate_sim anthropic --api-key KEY [--models a,b]`` Anthropic's Messages API
(``unigate_sim.anthropic``);
``python -m unigate_sim baidu --key AK:SK``, ``hunyuan --key SECRET_ID:SECRET_KEY`` and
``dashscope --key KEY`` the native-protocol simulators (``unigate_sim.baidu``, …);
``gemini --key KEY`` the Gemini API and ``vertex --key service-account.json`` Vertex AI with
its token endpoint (``unigate_sim.gemini``); ``palm --key KEY`` the PaLM API's chat
(``unigate_sim.palm``);
``cohere --api-key KEY`` Cohere's v2 API (``unigate_sim.cohere``) and
``spark --app 'APPID|APISecret|APIKey'`` iFlytek Spark's WebSocket API (``unigate_sim.spark``);
``github-oauth``, ``oidc`` and ``lark-oauth`` ``--client 'ID|SECRET|REDIRECT_URI' --person
'{"id": 1, "login": "ada"}'`` the login providers, and ``wechat-server --token T`` One API's
WeChat server (``unigate_sim.identity``).
``realtime --api-key KEY`` the Realtime API's WebSocket, OpenAI's path and Azure's
(``unigate_sim.realtime``).
``aiproxy-library --api-key KEY --library ID`` AI Proxy Library's ask API
(``unigate_sim.aiproxy_library``; each library cites one sample document) and ``fastgpt
--api-key fastgpt-...`` FastGPT's app chat (``unigate_sim.compatible.fastgpt``, under
``/api/v1``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import uvicorn

from unigate_sim.aiproxy_library import create_aiproxy_library_app
from unigate_sim.anthropic import DEFAULT_MODELS as ANTHROPIC_MODELS
from unigate_sim.anthropic import create_anthropic_app
from unigate_sim.azure import DEFAULT_DEPLOYMENTS, create_azure_app
from unigate_sim.baidu import create_baidu_app
from unigate_sim.cohere import create_cohere_app
from unigate_sim.compatible import create_compatible_app
from unigate_sim.dashscope import create_dashscope_app
from unigate_sim.gemini import create_gemini_app
from unigate_sim.gemini.vertex import vertex_app_for_key_files
from unigate_sim.hunyuan import create_hunyuan_app
from unigate_sim.identity import identity_app
from unigate_sim.openai import DEFAULT_MODELS, create_app
from unigate_sim.palm import create_palm_app
from unigate_sim.realtime import create_realtime_app
from unigate_sim.spark import SparkApp, SparkServer, SparkSimulator


def _comma_list(value: str) -> list[str]:
    """Parse ``a,b,c`` into ``["a", "b", "c"]``, ignoring blanks around and between items."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of model ids")
    return items


def _deployments(value: str) -> dict[str, str]:
    """Parse ``name=model,name=model`` into a deployment map."""
    pairs = [item.partition("=") for item in _comma_list(value)]
    if any(not name or not sep or not model for name, sep, model in pairs):
        raise argparse.ArgumentTypeError("expected name=model pairs separated by commas")
    return {name.strip(): model.strip() for name, _, model in pairs}


def _subcommand(providers: Any, name: str, port: int, what: str) -> argparse.ArgumentParser:
    """A simulator's subcommand with the options every one has: where it listens (``port``
    by default) and how much uvicorn logs."""
    sub: argparse.ArgumentParser = providers.add_parser(name, help=what)
    sub.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    sub.add_argument("--port", type=int, default=port, help=f"port to listen on ({port})")
    sub.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (warning)",
    )
    return sub


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per simulated provider."""
    parser = argparse.ArgumentParser(
        prog="unigate-sim", description="Serve a simulator of an upstream LLM provider's API."
    )
    providers = parser.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    openai = _subcommand(providers, "openai", 8900, "simulate the OpenAI HTTP API")
    openai.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="an API key the simulator accepts; repeat the option to accept several",
    )
    openai.add_argument(
        "--models",
        type=_comma_list,
        default=None,
        help=f"comma-separated model ids to serve (default: {','.join(DEFAULT_MODELS)})",
    )
    realtime = _subcommand(
        providers,
        "realtime",
        8930,
        "simulate the Realtime API (WebSocket; OpenAI's path and Azure's)",
    )
    realtime.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="a key the simulator accepts (bearer, subprotocol or api-key); repeatable",
    )
    azure = _subcommand(providers, "azure", 8901, "simulate the Azure OpenAI data-plane API")
    azure.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="a resource key the simulator accepts (api-key header); repeat for several",
    )
    azure.add_argument(
        "--deployments",
        type=_deployments,
        default=None,
        help="comma-separated name=model deployments (default: "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_DEPLOYMENTS.items())
        + ")",
    )
    anthropic = _subcommand(providers, "anthropic", 8902, "simulate Anthropic's Messages API")
    anthropic.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="an API key the simulator accepts (x-api-key header); repeat for several",
    )
    anthropic.add_argument(
        "--models",
        type=_comma_list,
        default=None,
        help=f"comma-separated model ids to serve (default: {','.join(ANTHROPIC_MODELS)})",
    )
    for name, port, key_help in _NATIVE:
        native = _subcommand(providers, name, port, f"simulate {name}'s native API")
        native.add_argument(
            "--key", dest="keys", action="append", required=True, metavar="KEY", help=key_help
        )
    cohere = _subcommand(providers, "cohere", 8915, "simulate Cohere's v2 API")
    cohere.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="a bearer key the simulator accepts; repeat for several",
    )
    spark = _subcommand(providers, "spark", 8916, "simulate iFlytek Spark's WebSocket API")
    spark.add_argument(
        "--app",
        dest="apps",
        action="append",
        required=True,
        type=_spark_app,
        metavar="APPID|APISECRET|APIKEY",
        help="an app the simulator knows (a Spark channel key); repeat for several",
    )
    for name, port, what in _KEYED:
        keyed = _subcommand(providers, name, port, f"simulate {what}")
        keyed.add_argument(
            "--api-key",
            dest="api_keys",
            action="append",
            required=True,
            metavar="KEY",
            help="a bearer key the simulator accepts; repeat for several",
        )
        if name == "aiproxy-library":
            keyed.add_argument(
                "--library",
                dest="libraries",
                action="append",
                required=True,
                metavar="ID",
                help="a library id the keys may ask; repeat for several",
            )
    for name, port, what in _IDENTITY:
        identity = _subcommand(providers, name, port, f"simulate {what}")
        identity.add_argument(
            "--client",
            dest="clients",
            action="append",
            default=[],
            metavar="ID|SECRET|REDIRECT_URI",
            help="a registered client (app); repeat for several",
        )
        identity.add_argument(
            "--person", default="", help="JSON of who logs in at the authorize page"
        )
        identity.add_argument("--token", default="", help="the WeChat server's access token")
    return parser


# Simulators taking bearer keys only (and AI Proxy Library its libraries): subcommand,
# default port, what it simulates.
_KEYED = (
    ("aiproxy-library", 8917, "AI Proxy Library's knowledge-base ask API"),
    ("fastgpt", 8918, "FastGPT's OpenAI-compatible app chat"),
)
# What each simulated library cites.
_SAMPLE_DOCUMENTS = [{"title": "Getting started", "url": "https://docs.example.com/start"}]


def _keyed_app(args: argparse.Namespace) -> Any:
    """The AI Proxy Library or FastGPT simulator for the command line."""
    if args.provider == "fastgpt":
        return create_compatible_app("fastgpt", set(args.api_keys))
    libraries = {library: list(_SAMPLE_DOCUMENTS) for library in args.libraries}
    return create_aiproxy_library_app(set(args.api_keys), libraries)


# Login providers: subcommand, default port, what it simulates.
_IDENTITY = (
    ("github-oauth", 8920, "GitHub's OAuth web flow and /user"),
    ("oidc", 8921, "an OpenID Connect provider"),
    ("lark-oauth", 8922, "Lark/Feishu's web-app login"),
    ("wechat-server", 8923, "One API's WeChat server"),
)


def _spark_app(value: str) -> SparkApp:
    """Parse a Spark channel key ``APPID|APISecret|APIKey``."""
    parts = [part.strip() for part in value.split("|")]
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected APPID|APISecret|APIKey")
    return SparkApp(*parts)


# The native-protocol simulators: (subcommand, default port, what --key takes).
_NATIVE = (
    ("baidu", 8910, "an API key and secret key the token endpoint accepts, as `AK:SK`"),
    ("hunyuan", 8911, "a SecretId and SecretKey the signature check accepts, as `ID:KEY`"),
    ("dashscope", 8912, "an API key the simulator accepts; repeat for several"),
    ("gemini", 8913, "a Gemini API key the simulator accepts; repeat for several"),
    ("vertex", 8914, "a service account key file whose account may get tokens; repeatable"),
    ("palm", 8919, "a PaLM API key the simulator accepts; repeat for several"),
)


def _native_app(provider: str, keys: list[str]) -> Any:
    """The Baidu, Hunyuan or DashScope simulator for ``--key`` values."""
    if provider == "dashscope":
        return create_dashscope_app(set(keys))
    if provider == "gemini":
        return create_gemini_app(set(keys))
    if provider == "vertex":
        return vertex_app_for_key_files(keys)
    if provider == "palm":
        return create_palm_app(set(keys))
    pairs = dict(key.split(":", 1) for key in keys if ":" in key)
    if len(pairs) != len(keys):
        raise SystemExit(f"{provider}: --key takes `ID:SECRET`")
    return create_baidu_app(pairs) if provider == "baidu" else create_hunyuan_app(pairs)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the chosen simulator until interrupted."""
    args = build_parser().parse_args(argv)
    if args.provider == "spark":
        # A WebSocket server of its own (the websockets library), not an ASGI app.
        SparkServer(SparkSimulator(args.apps), args.host, args.port).serve_forever()
        return
    if args.provider in {name for name, _, _ in _IDENTITY}:
        app: Any = identity_app(args.provider, args.clients, args.person, args.token)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return
    app = (
        _keyed_app(args)
        if args.provider in {name for name, _, _ in _KEYED}
        else create_cohere_app(set(args.api_keys))
        if args.provider == "cohere"
        else _native_app(args.provider, args.keys)
        if args.provider in {name for name, _, _ in _NATIVE}
        else create_azure_app(set(args.api_keys), args.deployments)
        if args.provider == "azure"
        else create_realtime_app(set(args.api_keys))
        if args.provider == "realtime"
        else create_anthropic_app(set(args.api_keys), args.models)
        if args.provider == "anthropic"
        else create_app(set(args.api_keys), args.models)
    )
    # uvloop + httptools and no access log: the simulator also stands in for load tests,
    # where it must never be the bottleneck.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
