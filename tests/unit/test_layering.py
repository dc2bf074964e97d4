"""The layering of the code, enforced: the library imports no application, and no application
imports another.

    libs/unigate            the shared library: imports no service and not the CLI app
    services/<s>/unigate_s  one service each: imports the library, never another service
    apps/cli/unigate_cli    the operator's CLI: a client of the services (gRPC), imports none

Every import counts, also one inside a function (a lazy import is still a dependency) and
``importlib.import_module("...")`` with a literal name. Services talk to each other over gRPC
and NATS only (``libs/unigate/v1``), so a service can be deployed, scaled and replaced alone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Top-level package -> where it lives. Each is an application except the library.
APPLICATIONS = {
    "unigate_gateway": ROOT / "services/gateway/unigate_gateway",
    "unigate_auth": ROOT / "services/auth/unigate_auth",
    "unigate_relay": ROOT / "services/relay/unigate_relay",
    "unigate_billing": ROOT / "services/billing/unigate_billing",
    "unigate_cli": ROOT / "apps/cli/unigate_cli",
}
LIBRARY = ("unigate", ROOT / "libs/unigate")


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import in ``tree``, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def violations(packages: dict[str, Path], applications: set[str]) -> list[str]:
    """Every import of an application from a package other than itself, as
    ``path:line: importer imports imported``."""
    found = []
    for package, directory in packages.items():
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                if top in applications and top != package:
                    found.append(f"{path}:{line}: {package} imports {module}")
    return found


def test_the_library_and_each_application_import_no_other_application() -> None:
    for directory in [LIBRARY[1], *APPLICATIONS.values()]:
        assert (directory / "__init__.py").is_file(), directory
    found = violations({LIBRARY[0]: LIBRARY[1], **APPLICATIONS}, set(APPLICATIONS))
    assert not found, "layering violated:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("package", "source", "flagged"),
    [
        # The library reaching into a service, even lazily inside a function.
        ("unigate", "def f():\n    from unigate_billing.redemptions import redeem\n", True),
        # A service importing another service, by either import form or importlib.
        ("unigate_auth", "import unigate_billing.replay\n", True),
        ("unigate_auth", "import importlib\nimportlib.import_module('unigate_relay.app')\n", True),
        # The CLI app importing a service.
        ("unigate_cli", "from unigate_gateway import proxy\n", True),
        # What is allowed: the library, the generated stubs, a package's own modules.
        (
            "unigate_auth",
            "from unigate.v1 import billing_pb2\nfrom unigate_auth import cache\n",
            False,
        ),
        ("unigate_cli", "from unigate.grpcutil import client_channel\n", False),
    ],
)
def test_a_violation_is_found(tmp_path: Path, package: str, source: str, flagged: bool) -> None:
    directory = tmp_path / package
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    (directory / "mod.py").write_text(source)
    found = violations({package: directory}, set(APPLICATIONS))
    assert bool(found) == flagged, found
    if flagged:
        assert found[0].startswith(f"{directory / 'mod.py'}:"), found
