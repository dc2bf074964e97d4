"""Command line entry point (``unigate-sim``, or ``python -m unigate_sim``).

``python -m unigate_sim openai --host 127.0.0.1 --port 8900 --api-key sk-sim-... [--models a,b]``
serves the OpenAI simulator until interrupted;
``python -m unigate_sim azure --api-key KEY [--deployments gpt-35-turbo=gpt-3.5-turbo,...]``
serves the Azure OpenAI one (``unigate_sim.azure``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import uvicorn

from unigate_sim.azure import DEFAULT_DEPLOYMENTS, create_azure_app
from unigate_sim.openai import DEFAULT_MODELS, create_app


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per simulated provider."""
    parser = argparse.ArgumentParser(
        prog="unigate-sim", description="Serve a simulator of an upstream LLM provider's API."
    )
    providers = parser.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    openai = providers.add_parser("openai", help="simulate the OpenAI HTTP API")
    openai.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    openai.add_argument("--port", type=int, default=8900, help="port to listen on (8900)")
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
    openai.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (warning)",
    )
    azure = providers.add_parser("azure", help="simulate the Azure OpenAI data-plane API")
    azure.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    azure.add_argument("--port", type=int, default=8901, help="port to listen on (8901)")
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
    azure.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (warning)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the chosen simulator until interrupted."""
    args = build_parser().parse_args(argv)
    app: Any = (
        create_azure_app(set(args.api_keys), args.deployments)
        if args.provider == "azure"
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
