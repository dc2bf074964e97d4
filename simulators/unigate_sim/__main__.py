"""Command line entry point (``unigate-sim``, or ``python -m unigate_sim``).

``python -m unigate_sim openai --host 127.0.0.1 --port 8900 --api-key sk-sim-... [--models a,b]``
serves the OpenAI simulator until interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from unigate_sim.openai import DEFAULT_MODELS, create_app


def _comma_list(value: str) -> list[str]:
    """Parse ``a,b,c`` into ``["a", "b", "c"]``, ignoring blanks around and between items."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of model ids")
    return items


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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the chosen simulator until interrupted."""
    args = build_parser().parse_args(argv)
    app = create_app(set(args.api_keys), args.models)
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
