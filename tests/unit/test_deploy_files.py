"""The deployment files (Dockerfile, .dockerignore, docker-compose.yml, deploy/*) are valid and
agree with each other and with the code.

No Docker engine is needed: every check parses the files. When an ``nginx`` binary is on PATH,
nginx's own syntax check runs on deploy/nginx.conf too.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from unigate.settings import ANY_FAMILY, parse_relay_addrs, relay_for
from unigate_relay.providers import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
OTEL_CONF = ROOT / "deploy" / "otel-collector.yaml"
PROMETHEUS_CONF = ROOT / "deploy" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "unigate.json"
KUBERNETES = ROOT / "deploy" / "kubernetes"

# The unigate services of the compose file and the Dockerfile stage each one runs.
UNIGATE_SERVICES = {
    "migrate": "migrate",
    "auth": "auth",
    "relay-openai": "relay",
    "relay-anthropic": "relay",
    "relay-google": "relay",
    "relay-others": "relay",
    "billing": "billing",
    "gateway": "gateway",
}
# Stage -> console script (from pyproject.toml) its entry point runs.
STAGE_SCRIPTS = {
    "migrate": "unigate",
    "auth": "unigate-auth",
    "relay": "unigate-relay",
    "billing": "unigate-billing",
    "gateway": "unigate-gateway",
}
# Long-running services: stage -> env var naming the port of their /healthz and /metrics.
OPS_PORT_VARS = {
    "auth": "AUTH_OPS_PORT",
    "relay": "RELAY_OPS_PORT",
    "billing": "BILLING_OPS_PORT",
    "gateway": "GATEWAY_OPS_PORT",
}
DEPENDS_ON_CONDITIONS = {
    "service_started",
    "service_healthy",
    "service_completed_successfully",
}
# What the environment supplies when interpolating docker-compose.yml in these tests.
TEST_ENV = {"SECRET_KEY": "test-secret-key"}


# --------------------------------------------------------------------------------------------
# docker-compose.yml


class InterpolationError(ValueError):
    pass


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error}."""

    def replace(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["plain"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise InterpolationError(f"{name}: {arg}")
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return node


@cache
def compose_raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@cache
def compose() -> dict[str, Any]:
    data = interpolate_tree(compose_raw(), TEST_ENV)
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    svcs = compose()["services"]
    assert isinstance(svcs, dict) and svcs
    return svcs


def compose_env(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def effective_env(service: str) -> dict[str, str]:
    """The container's environment: its image's ENV, overridden by the compose file."""
    target = build_target(service)
    return {**(dockerfile_env(target) if target else {}), **compose_env(service)}


def build_target(service: str) -> str | None:
    build = services()[service].get("build")
    if build is None:
        return None
    assert isinstance(build, dict), f"{service}: build must name a target"
    return str(build["target"])


def depends_on(service: str) -> dict[str, str]:
    deps = services()[service].get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def volume_mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of each volume of a service."""
    out = []
    for vol in services()[service].get("volumes") or []:
        if isinstance(vol, dict):
            out.append((str(vol.get("source", "")), str(vol["target"])))
        else:
            parts = str(vol).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def exposed_ports(service: str) -> set[int]:
    svc = services()[service]
    ports = {int(str(p).split("/")[0]) for p in svc.get("expose") or []}
    for p in svc.get("ports") or []:
        container = p["target"] if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
        ports.add(int(str(container).split("/")[0]))
    target = build_target(service)
    if target:
        ports |= dockerfile_exposed(target)
    return ports


def published_port(mapping: Any) -> int:
    """The host port of a `ports` entry ("[ip:]host:container" or the long form)."""
    if isinstance(mapping, dict):
        return int(mapping["published"])
    parts = str(mapping).split("/")[0].split(":")
    assert len(parts) >= 2, f"{mapping}: no host port (a random one would be published)"
    return int(parts[-2])


def has_healthcheck(service: str) -> bool:
    check = services()[service].get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and check.get("test") not in (["NONE"], "NONE")
    target = build_target(service)
    return target is not None and dockerfile_healthcheck(target) is not None


def host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


# --------------------------------------------------------------------------------------------
# Dockerfile


@cache
def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (what it is FROM, its instructions as (INSTRUCTION, arguments))."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"

    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] | None = None
    for text in logical:
        instruction, _, args = text.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m, f"cannot parse FROM {args!r}"
            name = m[2] or f"stage{len(stages)}"
            assert name not in stages, f"stage {name} defined twice"
            current = []
            stages[name] = (m[1], current)
        else:
            assert current is not None, f"{instruction} before the first FROM"
            current.append((instruction, args))
    return stages


def stage_chain(stage: str) -> list[str]:
    """The stage and the stages it is built FROM, outermost first."""
    stages = dockerfile_stages()
    chain = [stage]
    while (parent := stages[chain[0]][0]) in stages:
        chain.insert(0, parent)
    return chain


def stage_instructions(stage: str, instruction: str) -> list[str]:
    """Arguments of every `instruction` in the stage and the stages it inherits from."""
    return [
        args
        for name in stage_chain(stage)
        for ins, args in dockerfile_stages()[name][1]
        if ins == instruction
    ]


def dockerfile_env(stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage_instructions(stage, "ENV"):
        words = shlex.split(args)
        if "=" not in words[0]:  # legacy `ENV KEY value`
            env[words[0]] = " ".join(words[1:])
            continue
        env.update(word.split("=", 1) for word in words)
    return env


def dockerfile_exposed(stage: str) -> set[int]:
    return {
        int(port.split("/")[0])
        for args in stage_instructions(stage, "EXPOSE")
        for port in args.split()
    }


def dockerfile_healthcheck(stage: str) -> list[str] | None:
    """The command of the stage's effective HEALTHCHECK, or None for none."""
    checks = stage_instructions(stage, "HEALTHCHECK")
    if not checks:
        return None
    rest = re.sub(r"^(?:--[a-z-]+=\S+\s+)*", "", checks[-1])
    if rest.upper() == "NONE":
        return None
    assert rest.startswith("CMD "), f"unexpected HEALTHCHECK {rest!r}"
    return exec_form(rest[4:])


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def stage_command(stage: str) -> list[str]:
    """ENTRYPOINT + CMD of a stage (both in exec form)."""
    entry = stage_instructions(stage, "ENTRYPOINT")
    cmd = stage_instructions(stage, "CMD")
    return (exec_form(entry[-1]) if entry else []) + (exec_form(cmd[-1]) if cmd else [])


# --------------------------------------------------------------------------------------------
# nginx.conf


def nginx_parse(text: str) -> list[tuple[str, list[str], Any]]:
    """nginx.conf as a tree: [(directive, arguments, children or None)]."""
    tokens = re.findall(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|#[^\n]*|[{};]|[^\s{};]+", text)
    tokens = [t for t in tokens if not t.startswith("#")]
    pos = 0

    def block(depth: int) -> list[tuple[str, list[str], Any]]:
        nonlocal pos
        out: list[tuple[str, list[str], Any]] = []
        words: list[str] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ";":
                assert words, "empty directive"
                out.append((words[0], words[1:], None))
                words = []
            elif tok == "{":
                assert words, "block without a name"
                out.append((words[0], words[1:], block(depth + 1)))
                words = []
            elif tok == "}":
                assert depth > 0 and not words, "unbalanced '}' or missing ';'"
                return out
            else:
                words.append(tok[1:-1] if tok[0] in "\"'" else tok)
        assert depth == 0 and not words, "unterminated block or directive"
        return out

    return block(0)


def find(tree: list[tuple[str, list[str], Any]], name: str) -> list[tuple[list[str], Any]]:
    return [(args, children) for directive, args, children in tree if directive == name]


def one(tree: list[tuple[str, list[str], Any]], name: str) -> tuple[list[str], Any]:
    found = find(tree, name)
    assert len(found) == 1, f"expected one {name!r}, found {len(found)}"
    return found[0]


@cache
def nginx_tree() -> list[tuple[str, list[str], Any]]:
    return nginx_parse(NGINX_CONF.read_text())


def nginx_http() -> list[tuple[str, list[str], Any]]:
    return one(nginx_tree(), "http")[1]


def nginx_root_location() -> list[tuple[str, list[str], Any]]:
    server = one(nginx_http(), "server")[1]
    locations = {tuple(args): children for args, children in find(server, "location")}
    assert ("/",) in locations, "no `location /`"
    return locations[("/",)]


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert m, value
    return int(m[1]) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m[2]]


def size_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert m, value
    return (
        int(m[1]) * {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m[2].lower() if m[2] else None]
    )


# --------------------------------------------------------------------------------------------
# Tests: Dockerfile and .dockerignore


def test_dockerfile_base_stage_installs_the_project_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert "base" in stages
    assert stages["base"][0] == "python:3.11-slim"
    runs = " ".join(stage_instructions("base", "RUN"))
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs), "project not installed"
    assert "pip install -e" not in runs and "--editable" not in runs
    for stage in STAGE_SCRIPTS:
        users = stage_instructions(stage, "USER")
        assert users, f"{stage} runs as root"
        assert users[-1].split(":")[0] not in ("root", "0"), f"{stage} runs as root"


@pytest.mark.parametrize("stage", sorted(STAGE_SCRIPTS))
def test_dockerfile_stage_runs_its_console_script(stage: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert stage in dockerfile_stages(), f"no `FROM ... AS {stage}`"
    assert "base" in stage_chain(stage), f"{stage} is not built on base"
    command = stage_command(stage)
    assert command, f"{stage} has no ENTRYPOINT/CMD"
    assert command[0] == STAGE_SCRIPTS[stage]
    assert command[0] in scripts, f"{command[0]} is not a console script of pyproject.toml"
    if stage == "migrate":
        assert command[1:] == ["migrate"]


@pytest.mark.parametrize("stage", sorted(OPS_PORT_VARS))
def test_dockerfile_healthcheck_hits_healthz_on_an_exposed_port(stage: str) -> None:
    check = dockerfile_healthcheck(stage)
    assert check, f"{stage} has no HEALTHCHECK"
    assert check[:2] == ["python", "-c"], "the healthcheck uses python (slim has no curl)"
    code = check[2]
    compile(code, f"<{stage} healthcheck>", "exec")
    assert "urllib" in code and "/healthz" in code
    m = re.search(r"os\.environ\.get\('(\w+)', '(\d+)'\)", code)
    assert m, "the healthcheck port must follow the service's port setting"
    var, default = m[1], int(m[2])
    assert var == OPS_PORT_VARS[stage]
    env = dockerfile_env(stage)
    assert int(env[var]) == default, f"{var} in ENV and the healthcheck default differ"
    assert default in dockerfile_exposed(stage), f"{stage} does not EXPOSE {default}"


def test_dockerfile_migrate_stage_has_no_healthcheck() -> None:
    # A one-shot job: a healthcheck would mark it unhealthy, and it serves nothing.
    assert dockerfile_healthcheck("migrate") is None


@pytest.mark.parametrize(
    ("stage", "var"),
    [
        ("auth", "AUTH_LISTEN"),
        ("auth", "OPS_HOST"),
        ("relay", "RELAY_LISTEN"),
        ("relay", "OPS_HOST"),
        ("billing", "BILLING_LISTEN"),
        ("billing", "OPS_HOST"),
        ("gateway", "HOST"),
        ("gateway", "OPS_HOST"),
    ],
)
def test_dockerfile_services_listen_on_all_interfaces(stage: str, var: str) -> None:
    # The settings default to 127.0.0.1, which no other container could reach.
    value = dockerfile_env(stage).get(var)
    assert value, f"{stage} does not set {var}"
    assert value.split(":")[0] == "0.0.0.0"
    if ":" in value:
        assert int(value.rsplit(":", 1)[1]) in dockerfile_exposed(stage)


_GLOB_REGEX = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` (relative to the context) out, by .dockerignore rules."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            _GLOB_REGEX.get(tok, tok if tok.startswith("[") else re.escape(tok))
            for tok in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern)
        )
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: list[str] = []
    for stage in dockerfile_stages():
        for ins, args in dockerfile_stages()[stage][1]:
            if ins in ("COPY", "ADD") and "--from" not in args:
                copied += args.split()[:-1]
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        if any(c in source for c in "*?["):
            continue  # optional files (e.g. README.m[d])
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source, patterns), f"COPY {source} is dockerignored"
    for needed in (
        "libs/unigate/db/migrations/0001_init.sql",
        "libs/unigate/v1/auth_pb2.py",
        "services/gateway/unigate_gateway/__main__.py",
    ):
        assert not dockerignored(needed, patterns), f"{needed} is dockerignored"
    for unwanted in (
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "libs/unigate/__pycache__/cli.cpython-311.pyc",
        "unigate.egg-info/PKG-INFO",
        ".pytest_cache/README.md",
        "tests/unit/test_deploy_files.py",
    ):
        assert dockerignored(unwanted, patterns), f"{unwanted} is sent to the build"


# --------------------------------------------------------------------------------------------
# Tests: docker-compose.yml


def test_compose_services_have_an_image_or_a_build() -> None:
    for name, svc in services().items():
        assert isinstance(svc, dict), name
        assert "image" in svc or "build" in svc, f"{name} has neither image nor build"


def test_compose_builds_the_unigate_services_from_dockerfile_stages() -> None:
    stages = dockerfile_stages()
    for name in services():
        target = build_target(name)
        if target is None:
            continue
        build = services()[name]["build"]
        context = ROOT / build.get("context", ".")
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        assert target in stages, f"{name}: no `FROM ... AS {target}` in the Dockerfile"
    for name, stage in UNIGATE_SERVICES.items():
        assert build_target(name) == stage, f"{name} must be built from the {stage} stage"


def test_compose_depends_on_existing_services_with_valid_conditions() -> None:
    for name in services():
        for dep, condition in depends_on(name).items():
            assert dep in services(), f"{name} depends on unknown service {dep}"
            assert dep != name
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert has_healthcheck(dep), f"{name} waits for {dep} healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert services()[dep].get("restart", "no") == "no", f"{dep} must not restart"


def test_compose_startup_order() -> None:
    assert depends_on("migrate") == {
        "postgres": "service_healthy",
        "certs": "service_completed_successfully",
    }
    assert services()["migrate"]["restart"] == "no"
    for name in ("auth", "billing", "gateway"):
        assert depends_on(name).get("migrate") == "service_completed_successfully", name
    assert depends_on("gateway")["auth"] == "service_healthy"
    assert depends_on("gateway")["relay-openai"] == "service_healthy"
    assert depends_on("relay-openai")["auth"] == "service_healthy"
    assert "gateway" in depends_on("nginx")


def test_compose_dependency_graph_has_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "active", f"cycle: {' -> '.join([*path, name])}"
        state[name] = "active"
        for dep in depends_on(name):
            visit(dep, [*path, name])
        state[name] = "done"

    for name in services():
        visit(name, [])


def test_compose_named_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for name in services():
        for source, target in volume_mounts(name):
            assert target.startswith("/"), f"{name}: bad mount target {target!r}"
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            elif source:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


@pytest.mark.parametrize(
    ("service", "source", "target"),
    [
        ("nginx", "./deploy/nginx.conf", "/etc/nginx/nginx.conf"),
        ("otel-collector", "./deploy/otel-collector.yaml", "/etc/otelcol-contrib/config.yaml"),
        ("prometheus", "./deploy/prometheus.yml", "/etc/prometheus/prometheus.yml"),
    ],
)
def test_compose_mounts_the_deploy_configs(service: str, source: str, target: str) -> None:
    assert (source, target) in volume_mounts(service)


@pytest.mark.parametrize(
    ("service", "mount"),
    [
        ("postgres", "/var/lib/postgresql/data"),
        ("redis", "/data"),
        ("nats", "/data"),
        ("prometheus", "/prometheus"),
    ],
)
def test_compose_stateful_services_keep_data_in_named_volumes(service: str, mount: str) -> None:
    sources = {target: source for source, target in volume_mounts(service)}
    assert mount in sources, f"{service} keeps {mount} in the container"
    assert sources[mount] in (compose().get("volumes") or {})


def test_compose_stores_are_durable() -> None:
    redis_cmd = services()["redis"]["command"]
    assert "--appendonly" in redis_cmd
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    nats_cmd = services()["nats"]["command"]
    assert "-js" in nats_cmd and nats_cmd[nats_cmd.index("-sd") + 1] == "/data"
    assert "pg_isready" in services()["postgres"]["healthcheck"]["test"]


@pytest.mark.parametrize(
    ("service", "var"),
    [
        ("migrate", "SQL_DSN"),
        ("migrate", "SECRET_KEY"),
        ("auth", "SQL_DSN"),
        ("auth", "SECRET_KEY"),
        ("auth", "REDIS_CONN_STRING"),
        ("auth", "NATS_URL"),
        ("billing", "SQL_DSN"),
        ("billing", "REDIS_CONN_STRING"),
        ("billing", "NATS_URL"),
        ("relay-openai", "AUTH_ADDR"),
        ("gateway", "AUTH_ADDR"),
        ("gateway", "RELAY_ADDRS"),
        ("gateway", "NATS_URL"),
        ("gateway", "TRUSTED_PROXIES"),
    ],
)
def test_compose_sets_the_env_each_service_needs(service: str, var: str) -> None:
    assert compose_env(service).get(var), f"{service} lacks {var}"


def test_compose_secret_key_is_required_and_shared() -> None:
    raw = {name: svc.get("environment") or {} for name, svc in compose_raw()["services"].items()}
    for name in ("auth", "migrate"):
        assert raw[name]["SECRET_KEY"].startswith("${SECRET_KEY:?"), f"{name}: no default key"
    with pytest.raises(InterpolationError, match="SECRET_KEY"):
        interpolate_tree(compose_raw(), {})
    assert compose_env("auth")["SECRET_KEY"] == compose_env("migrate")["SECRET_KEY"]
    # Only the services that decrypt or encrypt provider keys get it.
    holders = {name for name in services() if "SECRET_KEY" in compose_env(name)}
    assert holders == {"auth", "migrate"}


def test_compose_addresses_point_at_services_and_their_ports() -> None:
    auth_port = host_port(effective_env("auth")["AUTH_LISTEN"])[1]
    for name in ("gateway", "relay-openai"):
        assert host_port(compose_env(name)["AUTH_ADDR"]) == ("auth", auth_port), name

    relays = parse_relay_addrs(compose_env("gateway")["RELAY_ADDRS"])
    assert compose_env("auth")["RELAY_ADDRS"] == compose_env("gateway")["RELAY_ADDRS"]
    assert "openai" in relays and ANY_FAMILY in relays
    for family, addr in relays.items():
        host, port = host_port(addr)
        assert host in services(), f"RELAY_ADDRS {family}: no service {host}"
        assert port == host_port(effective_env(host)["RELAY_LISTEN"])[1]
        command = services()[host].get("command") or []
        providers = command[command.index("--providers") + 1] if "--providers" in command else ""
        assert providers == effective_env(host).get("RELAY_PROVIDERS", providers), host
        served = providers.split(",")
        assert set(served) <= {*REGISTRY, "all"}, f"{host} serves unknown families {served}"
        if family == ANY_FAMILY:
            assert served == ["all"], f"the catch-all {host} must serve every family"
        else:
            assert family in served or served == ["all"], f"{host} does not serve {family}"
    # Every family the relay knows, and every family a channel type names, reaches a relay.
    from unigate.channel_types import CHANNEL_TYPES

    for family in {*REGISTRY, *(t.family for t in CHANNEL_TYPES.values())}:
        assert relay_for(relays, family) is not None, family
    relay_services = {n for n, stage in UNIGATE_SERVICES.items() if stage == "relay"}
    assert {host_port(a)[0] for a in relays.values()} == relay_services, "an unused relay"

    pg = compose_env("postgres")
    for name in ("migrate", "auth", "billing"):
        env = compose_env(name)
        dsn = urlsplit(env["SQL_DSN"])
        assert dsn.scheme in ("postgresql", "postgres")
        assert (dsn.hostname, dsn.port or 5432) == ("postgres", 5432), name
        assert (dsn.username, dsn.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert dsn.path.lstrip("/") == pg["POSTGRES_DB"]
        redis = urlsplit(env["REDIS_CONN_STRING"])
        assert (redis.scheme, redis.hostname) == ("redis", "redis"), name
    for name in ("migrate", "auth", "billing", "gateway"):
        nats = urlsplit(compose_env(name)["NATS_URL"])
        assert (nats.scheme, nats.hostname, nats.port or 4222) == ("nats", "nats", 4222), name


@pytest.mark.parametrize("service", sorted(set(UNIGATE_SERVICES) - {"migrate"}))
def test_compose_services_listen_where_they_expose(service: str) -> None:
    env = effective_env(service)
    listen_vars = [v for v in ("AUTH_LISTEN", "RELAY_LISTEN", "BILLING_LISTEN") if v in env]
    assert env.get("OPS_HOST") == "0.0.0.0", f"{service}: ops server unreachable"
    if service != "gateway":
        assert len(listen_vars) == 1
    for var in listen_vars:
        host, port = host_port(env[var])
        assert host == "0.0.0.0", f"{service}: {var} unreachable from other containers"
        assert port in exposed_ports(service)
    ops_var = OPS_PORT_VARS[UNIGATE_SERVICES[service]]
    assert int(env[ops_var]) in exposed_ports(service)


def test_compose_gateway_is_replicated_behind_nginx() -> None:
    gateway = services()["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    assert "ports" not in gateway, "the gateway must be reached through nginx only"
    assert "container_name" not in gateway, "a fixed container name prevents replicas"
    nginx = services()["nginx"]
    assert nginx["image"].startswith("nginx:1.27")
    assert [str(p) for p in nginx["ports"]] == ["3000:3000"]
    published = {
        published_port(p)
        for name, svc in services().items()
        if name != "nginx"
        for p in svc.get("ports") or []
    }
    assert 3000 not in published


def test_compose_network_subnet_and_trusted_proxies() -> None:
    ipam = compose()["networks"]["default"]["ipam"]["config"]
    assert len(ipam) == 1
    subnet = ipaddress.ip_network(ipam[0]["subnet"])
    # Where containers (nginx among them) get their addresses.
    pool = ipaddress.ip_network(ipam[0].get("ip_range", ipam[0]["subnet"]))
    assert pool.subnet_of(subnet)  # type: ignore[arg-type]
    trusted = [
        ipaddress.ip_network(p.strip())
        for p in compose_env("gateway")["TRUSTED_PROXIES"].split(",")
        if p.strip()
    ]
    assert trusted
    for net in trusted:
        assert net.subnet_of(subnet), f"TRUSTED_PROXIES {net} is outside the compose network"  # type: ignore[arg-type]
    assert any(pool.subnet_of(net) for net in trusted), "nginx's address may not be trusted"  # type: ignore[arg-type]
    if "gateway" in ipam[0]:
        # The bridge's own address is where host-forwarded connections come from.
        bridge = ipaddress.ip_address(ipam[0]["gateway"])
        assert bridge in subnet and bridge not in pool
        assert not any(bridge in net for net in trusted), "host-forwarded X-F-F would be believed"
    for name, svc in services().items():
        assert "networks" not in svc or "default" in svc["networks"], name


def test_compose_tracing_goes_to_the_collector() -> None:
    grpc_endpoint = yaml.safe_load(OTEL_CONF.read_text())["receivers"]["otlp"]["protocols"]["grpc"]
    grpc_port = host_port(grpc_endpoint["endpoint"])[1]
    for name in ("auth", "relay-openai", "billing", "gateway"):
        url = urlsplit(compose_env(name)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert url.hostname in services(), f"{name}: no service {url.hostname}"
        assert url.port == grpc_port, f"{name} does not send to the OTLP gRPC receiver"
        assert grpc_port in exposed_ports(url.hostname)


# --------------------------------------------------------------------------------------------
# Tests: deploy/nginx.conf


def test_nginx_conf_has_events_and_http() -> None:
    names = [directive for directive, _, _ in nginx_tree()]
    assert "events" in names and "http" in names
    assert "user" not in names, "the image's default user (nginx) is the right one"


def test_nginx_balances_over_the_gateway_replicas() -> None:
    http = nginx_http()
    upstreams = {args[0]: children for args, children in find(http, "upstream")}
    proxy_pass = one(nginx_root_location(), "proxy_pass")[0][0]
    assert proxy_pass.startswith("http://")
    upstream = upstreams[proxy_pass.removeprefix("http://")]
    servers = [args for args, _ in find(upstream, "server")]
    gateway_port = int(effective_env("gateway")["PORT"])
    assert [s[0] for s in servers] == [f"gateway:{gateway_port}"]
    assert gateway_port in exposed_ports("gateway")
    assert int(one(upstream, "keepalive")[0][0]) == 64
    if "resolve" in servers[0]:
        assert find(upstream, "zone"), "`resolve` needs a shared memory zone"
    resolver = one(http, "resolver")[0]
    assert resolver[0] == "127.0.0.11" and "valid=10s" in resolver


def test_nginx_listens_where_compose_publishes() -> None:
    server = one(nginx_http(), "server")[1]
    listens = {int(args[0].rsplit(":", 1)[-1]) for args, _ in find(server, "listen")}
    assert listens == {3000}
    assert exposed_ports("nginx") == listens


def test_nginx_streams_sse_unbuffered_over_keepalive() -> None:
    location = nginx_root_location()
    settings = {name: args for name, args, _ in location}
    assert settings["proxy_buffering"] == ["off"]
    assert settings["proxy_cache"] == ["off"]
    assert settings["proxy_http_version"] == ["1.1"]
    assert settings["chunked_transfer_encoding"] == ["on"]
    headers = {args[0].lower(): args[1] for args, _ in find(location, "proxy_set_header")}
    assert headers["connection"] == ""
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    assert headers["x-real-ip"] == "$remote_addr"
    rid_var = headers["x-request-id"].lstrip("$")
    maps = {args[1].lstrip("$"): args[0] for args, _ in find(nginx_http(), "map")}
    assert maps.get(rid_var) == "$http_x_request_id", "the client's X-Request-Id is dropped"


def test_nginx_limits_match_the_gateway() -> None:
    from unigate_gateway.settings import GatewaySettings

    fields = GatewaySettings.model_fields
    server = one(nginx_http(), "server")[1]
    location = nginx_root_location()
    body = size_bytes(one(server, "client_max_body_size")[0][0])
    assert body == 32 * 1024 * 1024
    assert body == fields["max_body_bytes"].default, "nginx and the gateway disagree"
    # Per route, as the gateway's BodyLimits: /api and the audio uploads.
    nested = {tuple(args): children for args, children in find(location, "location")}
    for route, setting in (
        (("/api/",), "max_api_body_bytes"),
        (("~", "^/v1/audio/(transcriptions|translations)$"), "max_upload_body_bytes"),
    ):
        limit = size_bytes(one(nested[route], "client_max_body_size")[0][0])
        assert limit == fields[setting].default, route
        assert one(nested[route], "proxy_pass")[0] == one(location, "proxy_pass")[0], route
    assert one(nested[("=", "/metrics")], "return")[0] == ["404"]
    # Request heads: no longer a line, and no slower, than the gateway takes them.
    _, size = one(server, "large_client_header_buffers")[0]
    assert size_bytes(size) <= fields["max_header_bytes"].default
    timeout = seconds(one(server, "client_header_timeout")[0][0])
    assert timeout <= fields["header_read_timeout"].default
    read_timeout = seconds(one(location, "proxy_read_timeout")[0][0])
    assert read_timeout == 600
    assert read_timeout >= fields["relay_timeout"].default
    upstream = one(nginx_http(), "upstream")[1]
    if find(upstream, "keepalive_timeout"):
        # uvicorn closes idle connections after 5 s; nginx must give up on them first.
        assert seconds(one(upstream, "keepalive_timeout")[0][0]) < 5


def test_nginx_parser_rejects_broken_config() -> None:
    with pytest.raises(AssertionError):
        nginx_parse("http { server { listen 3000 } }")
    with pytest.raises(AssertionError):
        nginx_parse("events { }\nhttp {")


def test_nginx_syntax_check(tmp_path: Path) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("no nginx binary on PATH to run `nginx -t`")
    text = NGINX_CONF.read_text()
    # Outside Docker, `gateway` does not resolve and there is no DNS server at 127.0.0.11;
    # `resolve` is dropped too, since nginx before 1.27.3 lacks it and an IP needs none.
    local = re.sub(r"(\bserver\s+)gateway(:\d+)(\s+resolve)?", r"\g<1>127.0.0.1\2", text)
    local = re.sub(r"^\s*resolver\s[^;]*;\s*$", "", local, flags=re.M)
    assert "gateway:" not in local and "127.0.0.11" not in local, "substitution failed"
    conf = tmp_path / "nginx.conf"
    conf.write_text(local)
    pid = f"pid {tmp_path / 'nginx.pid'};"
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf), "-g", pid],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# Tests: deploy/prometheus.yml and deploy/otel-collector.yaml


def prometheus_targets() -> dict[str, list[tuple[str, int]]]:
    """Job name -> (host, port) it scrapes, from static and DNS service discovery."""
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text())
    jobs: dict[str, list[tuple[str, int]]] = {}
    for job in conf["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = jobs.setdefault(job["job_name"], [])
        for static in job.get("static_configs") or []:
            targets += [host_port(t) for t in static["targets"]]
        for dns in job.get("dns_sd_configs") or []:
            assert dns.get("type", "SRV") == "A", "Docker's DNS serves A records"
            targets += [(name, int(dns["port"])) for name in dns["names"]]
    return jobs


def test_prometheus_scrapes_every_service_on_its_ops_port() -> None:
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text())
    assert conf["global"]["scrape_interval"] == "15s"
    scraped: dict[str, int] = {}
    for job, targets in prometheus_targets().items():
        assert targets, f"job {job} scrapes nothing"
        for host, port in targets:
            assert host in services(), f"{job}: no service {host}"
            assert port in exposed_ports(host), f"{job}: {host} does not expose {port}"
            scraped[host] = port
    for service in set(UNIGATE_SERVICES) - {"migrate"}:
        assert service in scraped, f"{service} is not scraped"
        ops_var = OPS_PORT_VARS[UNIGATE_SERVICES[service]]
        assert scraped[service] == int(effective_env(service)[ops_var]), service
    assert scraped["auth"] == 9101 and scraped["relay-openai"] == 9102
    assert scraped["relay-others"] == 9102
    assert scraped["billing"] == 9103 and scraped["gateway"] == 9100
    # Never the public port, where nginx (and the gateway itself) answer /metrics with 404.
    assert scraped["gateway"] != int(effective_env("gateway")["PORT"])


def test_prometheus_discovers_each_gateway_replica() -> None:
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text())
    (job,) = [
        j
        for j in conf["scrape_configs"]
        if ("gateway", 9100) in prometheus_targets()[j["job_name"]]
    ]
    assert services()["gateway"]["deploy"]["replicas"] > 1
    assert job.get("dns_sd_configs"), "a static target reaches one replica at random"


def test_otel_collector_pipelines_use_defined_components() -> None:
    conf = yaml.safe_load(OTEL_CONF.read_text())
    protocols = conf["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    for proto in protocols.values():
        host, _ = host_port(proto["endpoint"])
        assert host == "0.0.0.0", "the receivers must be reachable from other containers"
    assert "batch" in conf["processors"]
    assert "debug" in conf["exporters"]
    pipelines = conf["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in conf[kind], f"pipeline {name}: undefined {kind} {component}"
        assert pipeline["receivers"] and pipeline["exporters"], name
        assert "batch" in pipeline["processors"], name
    for extension in conf["service"].get("extensions", []):
        assert extension in conf["extensions"]
    assert re.search(r"^\s*#\s*otlp\S*:", OTEL_CONF.read_text(), re.M), "no example exporter"


# --------------------------------------------------------------------------------------------
# Tests: deploy/grafana (provisioning and the unigate dashboard)

# Labels Prometheus adds to every series, and the bucket label of histograms.
_TARGET_LABELS = {"instance", "job"}


@cache
def code_metrics() -> dict[str, tuple[str, set[str]]]:
    """Every sample name the services export -> (its metric family, that family's labels)."""
    import prometheus_client

    import unigate.metrics
    import unigate_auth.metrics
    import unigate_billing.metrics
    import unigate_gateway.metrics
    import unigate_relay.metrics

    modules = (
        unigate.metrics,
        unigate_auth.metrics,
        unigate_billing.metrics,
        unigate_gateway.metrics,
        unigate_relay.metrics,
    )
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    out: dict[str, tuple[str, set[str]]] = {}
    for module in modules:
        for metric in vars(module).values():
            if not isinstance(metric, prometheus_client.metrics.MetricWrapperBase):
                continue
            (family,) = metric.describe()
            labels = set(metric._labelnames)
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                out[family.name + suffix] = (family.name, labels | extra)
    return out


def dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, PromQL expression, legend format) of every query of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"], target.get("legendFormat", "")))
    return out


def test_code_metrics_are_found() -> None:
    names = code_metrics()
    # One of each kind, from each module: the discovery itself works.
    for name in (
        "unigate_gateway_requests_total",
        "unigate_gateway_request_duration_seconds_bucket",
        "unigate_gateway_usage_buffer_events",
        "unigate_relay_upstream_errors_total",
        "unigate_auth_decisions_total",
        "unigate_billing_consumer_pending_messages",
        "unigate_channel_circuit_state",
        "unigate_reservations_outstanding",
    ):
        assert name in names, name
    assert names["unigate_gateway_requests_total"][1] == {"route", "model", "channel", "status"}


def test_dashboard_queries_only_metrics_and_labels_the_code_exports() -> None:
    metrics = code_metrics()
    targets = dashboard_targets()
    assert len(targets) >= 20
    for title, expr, legend in targets:
        used = set(re.findall(r"\bunigate_[a-z0-9_]+\b", expr))
        assert used, f"{title}: queries no unigate metric"
        unknown = used - set(metrics)
        assert not unknown, f"{title}: {unknown} is exported by no service"
        labels = set().union(*(metrics[m][1] for m in used)) | _TARGET_LABELS
        grouped: set[str] = set()
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            grouped |= {g.strip() for g in group.split(",") if g.strip()}
        selected = set(re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)", expr))
        assert grouped | selected <= labels, (
            f"{title}: unknown labels {(grouped | selected) - labels}"
        )
        for name in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            assert name in (grouped or labels), f"{title}: legend {{{{{name}}}}} is not grouped by"
        assert expr.count("(") == expr.count(")"), f"{title}: unbalanced parentheses"
        for m in re.findall(r"histogram_quantile\([^,]+,\s*sum by \(([^)]*)\)", expr):
            assert "le" in {x.strip() for x in m.split(",")}, f"{title}: quantile without le"


def test_dashboard_charts_every_metric_the_code_exports() -> None:
    charted = {
        metrics_family
        for _, expr, _ in dashboard_targets()
        for name in re.findall(r"\bunigate_[a-z0-9_]+\b", expr)
        for metrics_family in [code_metrics()[name][0]]
    }
    families = {family for family, _ in code_metrics().values()}
    assert families - charted == set(), "exported but on no panel"


def test_grafana_provisioning_matches_compose_and_the_dashboard() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus"
    url = urlsplit(ds["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert url.port in exposed_ports("prometheus") or "127.0.0.1:9090:9090" in [
        str(p) for p in services()["prometheus"]["ports"]
    ]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/unigate.yaml").read_text())
    (provider,) = providers["providers"]
    mounts = dict((t, s) for s, t in volume_mounts("grafana"))
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "unigate"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == ds["uid"], panel["title"]
    home = compose_env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/" + DASHBOARD.name


# --------------------------------------------------------------------------------------------
# Tests: deploy/kubernetes

K8S_KINDS = {
    "namespace.yaml": ["Namespace"],
    "secrets.yaml": ["Secret"],
    "config.yaml": ["ConfigMap"],
    "migrate-job.yaml": ["Job"],
    "auth.yaml": ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
    "billing.yaml": ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
    "gateway.yaml": ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
    "relays.yaml": ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"] * 4,
    "network-policies.yaml": ["NetworkPolicy"] * 5,
}
API_VERSIONS = {
    "Namespace": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Job": "batch/v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
# Console script -> (setting naming its ops/HTTP port, setting naming its gRPC listen address).
SERVICE_PORTS = {
    "unigate-gateway": ("GATEWAY_OPS_PORT", None),
    "unigate-auth": ("AUTH_OPS_PORT", "AUTH_LISTEN"),
    "unigate-relay": ("RELAY_OPS_PORT", "RELAY_LISTEN"),
    "unigate-billing": ("BILLING_OPS_PORT", "BILLING_LISTEN"),
}


@cache
def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert all(isinstance(d, dict) for d in docs), path.name
        out[path.name] = docs
    return out


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for docs in k8s_docs().values():
        for d in docs:
            if d["kind"] == kind:
                assert d["metadata"]["name"] not in found, f"two {kind}s {d['metadata']['name']}"
                found[d["metadata"]["name"]] = d
    return found


def k8s_config() -> dict[str, str]:
    data = k8s("ConfigMap")["unigate-config"]["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    return data


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def named_ports(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in c.get("ports", [])}


def test_k8s_manifests_parse_with_the_expected_kinds() -> None:
    assert {name: [d["kind"] for d in docs] for name, docs in k8s_docs().items()} == K8S_KINDS
    for docs in k8s_docs().values():
        for d in docs:
            assert d["apiVersion"] == API_VERSIONS[d["kind"]], d["kind"]
            if d["kind"] != "Namespace":
                assert d["metadata"]["namespace"] == "unigate", d["metadata"]["name"]
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(k8s_docs())
    (image,) = kustomization["images"]
    for name, d in {**k8s("Deployment"), **k8s("Job")}.items():
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"].split(":")[0] == image["name"], name
        assert pod["securityContext"]["runAsNonRoot"] is True, name


def test_k8s_deployments_run_console_scripts_with_probes_on_real_ports() -> None:
    from unigate.ops import ops_routes

    async def ready() -> dict[str, bool]:
        return {}

    paths = {r.path for r in ops_routes(ready)}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    config = k8s_config()
    deployments = k8s("Deployment")
    assert {"gateway", "auth", "billing", "relay-openai"} <= set(deployments)
    for name, d in deployments.items():
        c = container(d)
        script = c["command"][0]
        assert script in scripts and script in SERVICE_PORTS, name
        ops_var, listen_var = SERVICE_PORTS[script]
        ports = named_ports(c)
        probes = {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["path"] == "/healthz", name
        assert probes["readinessProbe"]["path"] == "/readyz", name
        for kind, probe in probes.items():
            assert probe["path"] in paths, f"{name} {kind}: no route {probe['path']}"
            port = probe["port"]
            number = ports[port] if isinstance(port, str) else int(port)
            assert number == int(config[ops_var]), f"{name} {kind}: not the ops port"
            assert number in ports.values(), f"{name} {kind}: port not declared"
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == int(config[ops_var]), name
        assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in paths
        if listen_var:
            assert host_port(config[listen_var]) == ("0.0.0.0", ports["grpc"]), name
            assert config["OPS_HOST"] == "0.0.0.0"
        else:
            assert config["HOST"] == "0.0.0.0"
        assert d["spec"]["selector"]["matchLabels"].items() <= (
            d["spec"]["template"]["metadata"]["labels"].items()
        ), name
        assert c["resources"]["requests"]["cpu"], f"{name}: the HPA needs a CPU request"


def test_k8s_shutdown_fits_in_the_grace_period() -> None:
    config = k8s_config()
    drain = float(config["SHUTDOWN_DRAIN_TIMEOUT"])
    for name, d in k8s("Deployment").items():
        c = container(d)
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        needed = sleep + drain
        if c["command"][0] == "unigate-gateway":
            assert sleep > 0, "the gateway must outlive its removal from the endpoints"
            needed += float(config["USAGE_FLUSH_TIMEOUT"])
        grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        if c["command"][0] != "unigate-auth":
            assert grace > needed, f"{name}: {grace}s < {needed}s of drain"


def test_k8s_services_hpas_and_pdbs_select_real_deployments() -> None:
    deployments = k8s("Deployment")

    def selected(selector: dict[str, str]) -> list[str]:
        return [
            n
            for n, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]

    for name, svc in k8s("Service").items():
        (target,) = selected(svc["spec"]["selector"])
        ports = named_ports(container(deployments[target]))
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"service {name}: no port {port['targetPort']}"
            assert port["port"] == ports[port["targetPort"]], name
        if "grpc" in ports:
            # Headless, so that `dns:///` clients see (and balance over) every pod.
            assert svc["spec"].get("clusterIP") == "None", f"{name} must be headless"
    hpas = k8s("HorizontalPodAutoscaler")
    for name, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["apiVersion"]) == ("Deployment", "apps/v1")
        assert ref["name"] in deployments, name
        assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    relays = {n for n, d in deployments.items() if container(d)["command"][0] == "unigate-relay"}
    assert {"gateway", "billing", *relays} <= {
        h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()
    }
    covered = set()
    for name, pdb in k8s("PodDisruptionBudget").items():
        (target,) = selected(pdb["spec"]["selector"]["matchLabels"])
        assert pdb["spec"]["minAvailable"] < deployments[target]["spec"]["replicas"], name
        covered.add(target)
    assert covered == set(deployments)


def test_k8s_env_comes_from_the_configmap_and_secret() -> None:
    from unigate_auth.settings import AuthSettings
    from unigate_billing.settings import BillingSettings
    from unigate_cli.ledger import CliSettings
    from unigate_gateway.settings import GatewaySettings
    from unigate_relay.settings import RelaySettings

    known = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER_ARG"}  # read by telemetry.setup
    for cls in (GatewaySettings, AuthSettings, RelaySettings, BillingSettings, CliSettings):
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
    assert set(k8s_config()) <= known, f"unknown settings {set(k8s_config()) - known}"
    secret = k8s("Secret")["unigate-secrets"]["stringData"]
    assert set(secret) == {"SECRET_KEY", "SESSION_SECRET", "SQL_DSN", "REDIS_CONN_STRING"}
    assert set(secret) <= known
    for name, d in {**k8s("Deployment"), **k8s("Job")}.items():
        c = container(d)
        assert c["envFrom"] == [{"configMapRef": {"name": "unigate-config"}}], name
        for var in c.get("env", []):
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "unigate-secrets" and ref["key"] == var["name"] in secret
    needs = {
        "unigate-auth": {"SQL_DSN", "REDIS_CONN_STRING", "SECRET_KEY"},
        "unigate-billing": {"SQL_DSN", "REDIS_CONN_STRING"},
        "unigate-relay": {"REDIS_CONN_STRING"},
        "unigate-gateway": {"SESSION_SECRET", "REDIS_CONN_STRING"},
        "unigate": {"SQL_DSN", "SECRET_KEY"},
    }
    for name, d in {**k8s("Deployment"), **k8s("Job")}.items():
        c = container(d)
        assert {v["name"] for v in c.get("env", [])} == needs[c["command"][0]], name


def test_k8s_addresses_point_at_headless_services_serving_each_family() -> None:
    config = k8s_config()
    services_ = k8s("Service")
    deployments = k8s("Deployment")

    def service_of(target: str) -> tuple[str, int]:
        m = re.fullmatch(r"dns:///([a-z0-9-]+)\.unigate\.svc\.cluster\.local:(\d+)", target)
        assert m, f"{target}: not a dns:/// name of a unigate Service"
        assert m[1] in services_, f"{target}: no Service {m[1]}"
        assert int(m[2]) in {p["port"] for p in services_[m[1]]["spec"]["ports"]}, target
        return m[1], int(m[2])

    assert service_of(config["AUTH_ADDR"]) == ("auth", host_port(config["AUTH_LISTEN"])[1])
    assert service_of(config["BILLING_ADDR"])[0] == "billing"
    relays = parse_relay_addrs(config["RELAY_ADDRS"])
    assert ANY_FAMILY in relays
    used = set()
    for family, target in relays.items():
        name, port = service_of(target)
        assert port == host_port(config["RELAY_LISTEN"])[1]
        command = container(deployments[name])["command"]
        assert command[:2] == ["unigate-relay", "--providers"], name
        served = command[2].split(",")
        assert set(served) <= {*REGISTRY, "all"}, name
        assert family in served or served == ["all"], f"{name} does not serve {family}"
        if family == ANY_FAMILY:
            assert served == ["all"]
        used.add(name)
    from unigate.channel_types import CHANNEL_TYPES

    for family in {*REGISTRY, *(t.family for t in CHANNEL_TYPES.values())}:
        assert relay_for(relays, family) is not None, family
    relay_deployments = {
        n for n, d in deployments.items() if container(d)["command"][0] == "unigate-relay"
    }
    assert used == relay_deployments
    # The same split as docker-compose.yml.
    compose_relays = parse_relay_addrs(compose_env("gateway")["RELAY_ADDRS"])
    assert {f: host_port(a)[0] for f, a in compose_relays.items()} == {
        f: service_of(t)[0] for f, t in relays.items()
    }


# --------------------------------------------------------------------------------------------
# Internal mutual TLS: compose and Kubernetes give every service its certificates, and the
# Kubernetes network policies allow the same call graph as the servers' per-RPC table.

# The identity each entry point presents (what it passes to settings.tls_files).
SCRIPT_IDENTITY = {
    "unigate-gateway": "gateway",
    "unigate-auth": "auth",
    "unigate-relay": "relay",
    "unigate-billing": "billing",
    "unigate": "admin",
}
STAGE_IDENTITY = {"migrate": "admin", "auth": "auth", "relay": "relay", "billing": "billing"}
STAGE_IDENTITY["gateway"] = "gateway"


def test_compose_makes_the_certificates_once_and_mounts_them_in_every_service() -> None:
    from unigate.certs import IDENTITIES, TlsFiles

    certs = services()["certs"]
    assert build_target("certs") == "migrate"  # the image whose entry point is `unigate`
    command = [str(c) for c in certs["command"]]
    assert command[0] == "certs" and "--if-missing" in command, command
    out = command[command.index("--out") + 1]
    assert certs.get("restart") == "no"
    (volume,) = [src for src, target in volume_mounts("certs") if target == out]
    raw_mounts = {str(v) for v in certs["volumes"]}
    assert f"{volume}:{out}" in raw_mounts, "certs must write its volume"
    from unigate_cli.cli import build_parser

    args = build_parser().parse_args(command)
    assert sorted(args.identity or IDENTITIES) == sorted(IDENTITIES)
    for name, stage in UNIGATE_SERVICES.items():
        env = effective_env(name)
        assert env.get("INTERNAL_TLS", "on").lower() not in ("off", "false", "0", "no"), name
        tls_dir = env["TLS_DIR"]
        assert f"{volume}:{tls_dir}:ro" in {str(v) for v in services()[name]["volumes"]}, name
        assert depends_on(name)["certs"] == "service_completed_successfully", name
        # What the service will look for is what `unigate certs` writes.
        files = TlsFiles.in_dir(tls_dir, STAGE_IDENTITY[stage])
        assert {files.ca.name, files.cert.name, files.key.name} == {
            "ca.pem",
            f"{STAGE_IDENTITY[stage]}.pem",
            f"{STAGE_IDENTITY[stage]}-key.pem",
        }
        # Internal ports stay on the compose network.
        assert "ports" not in services()[name], f"{name} publishes a port"
    # The image makes /certs the service user's, so a new named volume there is writable.
    assert any("/certs" in line and "unigate" in line for line in stage_instructions("base", "RUN"))


def test_k8s_pods_mount_only_their_identity_certificates() -> None:
    from unigate.certs import IDENTITIES, TlsFiles

    config = k8s_config()
    assert "INTERNAL_TLS" not in config or config["INTERNAL_TLS"].lower() in ("on", "true", "1")
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert set(generated) == {f"unigate-tls-{i}" for i in IDENTITIES}
    for identity in IDENTITIES:
        gen = generated[f"unigate-tls-{identity}"]
        assert gen["namespace"] == "unigate"
        files = TlsFiles.in_dir("certs", identity)
        assert gen["files"] == [str(files.ca), str(files.cert), str(files.key)], identity
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/kubernetes/certs/" in ignored, "keys must never be committed"
    for name, d in k8s("Deployment").items():
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        identity = SCRIPT_IDENTITY[c["command"][0]]
        (volume,) = [v for v in pod["volumes"] if "secret" in v]
        assert volume["secret"]["secretName"] == f"unigate-tls-{identity}", name
        assert volume["secret"]["defaultMode"] == 0o440, name
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"], name
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["mountPath"] == config["TLS_DIR"] and mount["readOnly"] is True, name


def _selected_names(selector: dict[str, Any]) -> set[str]:
    """The app.kubernetes.io/name values a pod selector (labels or `In` expressions) picks."""
    names = set()
    if "app.kubernetes.io/name" in selector.get("matchLabels", {}):
        names.add(selector["matchLabels"]["app.kubernetes.io/name"])
    for expr in selector.get("matchExpressions", []):
        assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In", expr
        names |= set(expr["values"])
    return names


def test_k8s_network_policies_allow_exactly_the_calls_the_rpc_table_allows() -> None:
    from unigate.rpc_acl import ALLOWED, SERVED, method_names

    policies = k8s("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    deployments = k8s("Deployment")
    identity_of = {n: SCRIPT_IDENTITY[container(d)["command"][0]] for n, d in deployments.items()}
    identity_of["unigate-admin"] = "admin"  # the operator's pod (README.md)
    config = k8s_config()
    grpc_port = {
        "auth": host_port(config["AUTH_LISTEN"])[1],
        "relay": host_port(config["RELAY_LISTEN"])[1],
        "billing": host_port(config["BILLING_LISTEN"])[1],
    }
    ops_ports = {int(config[v]) for v in ("AUTH_OPS_PORT", "RELAY_OPS_PORT", "BILLING_OPS_PORT")}
    # (caller identity, server identity) pairs over the gRPC port, from the policies.
    allowed_pairs: set[tuple[str, str]] = set()
    covered: set[str] = set()
    for name, policy in policies.items():
        spec = policy["spec"]
        if name == "default-deny-ingress":
            continue
        assert spec["policyTypes"] == ["Ingress"], name
        targets = _selected_names(spec["podSelector"])
        assert targets <= set(deployments), name
        covered |= targets
        servers = {identity_of[t] for t in targets}
        for rule in spec["ingress"]:
            ports = {int(p["port"]) for p in rule["ports"]}
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    # Other namespaces: the ingress controller (HTTP) and Prometheus (ops) only.
                    allowed_ns = peer["namespaceSelector"]["matchLabels"][
                        "kubernetes.io/metadata.name"
                    ]
                    assert allowed_ns in ("monitoring", "ingress-nginx"), name
                    assert not ports & set(grpc_port.values()), f"{name}: gRPC open to {allowed_ns}"
                    continue
                assert set(peer) == {"podSelector"}, f"{name}: peers are pods of this namespace"
                for caller in _selected_names(peer["podSelector"]):
                    for server in servers:
                        assert ports == {grpc_port[server]}, name
                        allowed_pairs.add((identity_of[caller], server))
            assert ports <= {*grpc_port.values(), *ops_ports, int(config["PORT"])}, name
    assert covered == set(deployments), "a Deployment with no ingress policy accepts nothing"
    # The table, minus health and reflection (any identity; not worth a connection).
    expected = {
        (caller, server)
        for server, served in SERVED.items()
        for file, service in served
        for path in method_names(file, service)
        for caller in ALLOWED[path]
    }
    assert allowed_pairs == expected
