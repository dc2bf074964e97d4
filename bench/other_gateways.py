"""Other LLM gateways run beside unigate in `make bench`, for scale: LiteLLM's proxy and
Portkey's gateway, each in front of the same nginx upstream, driven by the same wrk.

They are installed outside the project's dependencies by ``bench/compare/setup.sh`` into
``bench/.work/compare/`` (ignored by git); one that is not installed there is skipped with a
message. Both run as shipped, one process each, with nothing that would call the internet
(the machine that runs the bench may have none): LiteLLM with its telemetry off and its
bundled model cost map instead of the one it fetches from GitHub, Portkey headless.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

COMPARE_DIR = Path(__file__).resolve().parent / ".work" / "compare"
LITELLM_BIN = COMPARE_DIR / "litellm" / "bin" / "litellm"
LITELLM_PYTHON = COMPARE_DIR / "litellm" / "bin" / "python"
PORTKEY_DIR = COMPARE_DIR / "portkey" / "node_modules" / "@portkey-ai" / "gateway"
PORTKEY_SERVER = PORTKEY_DIR / "build" / "start-server.js"
# What the gateways pass on to nginx as the provider key (nginx checks nothing).
UPSTREAM_KEY = "sk-bench-upstream"


class GatewayError(RuntimeError):
    """Another gateway could not be started or did not answer as expected."""


@dataclass
class OtherGateway:
    """One running comparison gateway: where wrk sends requests, with which key and headers."""

    name: str
    version: str
    port: int
    key: str  # what wrk sends as `Authorization: Bearer <key>`
    headers: dict[str, str] = field(default_factory=dict)  # extra request headers (BENCH_HEADERS)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def wait_ready(self, body: dict[str, object], timeout: float) -> None:
        """Until a chat completion through the gateway returns 200 with nginx's usage."""
        deadline = time.monotonic() + timeout
        last = ""
        headers = {"Authorization": f"Bearer {self.key}", **self.headers}
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise GatewayError(
                        f"{self.name} exited with {self.proc.returncode}\n{self.tail()}"
                    )
                try:
                    r = client.post(self.url, json=body, headers=headers)
                    if r.status_code == 200 and r.json().get("usage", {}).get("total_tokens") == 21:
                        return
                    last = f"{r.status_code} {r.text[:300]}"
                except (httpx.HTTPError, ValueError) as e:
                    last = repr(e)
                if time.monotonic() > deadline:
                    raise GatewayError(f"{self.name} did not answer in time: {last}\n{self.tail()}")
                time.sleep(0.25)

    def tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # No proxy between the gateways and the local nginx.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(name, None)
    env.update(extra)
    return env


def litellm_version() -> str | None:
    if not LITELLM_BIN.exists():
        return None
    out = subprocess.run(
        [str(LITELLM_PYTHON), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def start_litellm(upstream_url: str, model: str, port: int, workdir: Path) -> OtherGateway | None:
    """LiteLLM's proxy with one OpenAI-compatible model on the nginx and a master key."""
    version = litellm_version()
    if version is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    master_key = "sk-" + secrets.token_hex(16)
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream_url + "/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False, "num_retries": 0},
    }
    # JSON is YAML: no YAML writer needed here.
    conf = workdir / "litellm.yaml"
    conf.write_text(json.dumps(config, indent=2))
    log = workdir / "litellm.log"
    env = _offline_env(
        LITELLM_TELEMETRY="False",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else fetched from GitHub at import
        LITELLM_LOG="ERROR",
        DISABLE_ADMIN_UI="True",
    )
    cmd = [str(LITELLM_BIN), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(workdir)
        )
    return OtherGateway("litellm", version, port, master_key, proc=proc, log=log)


def portkey_version() -> str | None:
    package = PORTKEY_DIR / "package.json"
    if not PORTKEY_SERVER.exists() or shutil.which("node") is None:
        return None
    try:
        return str(json.loads(package.read_text()).get("version", "?"))
    except (OSError, ValueError):
        return "?"


def start_portkey(upstream_url: str, port: int, workdir: Path) -> OtherGateway | None:
    """Portkey's gateway routing to the nginx as a custom OpenAI host (its README's
    ``x-portkey-provider`` + ``x-portkey-custom-host`` headers); the bearer key is passed on
    to the provider, as Portkey does (it has no keys of its own without its hosted service)."""
    version = portkey_version()
    if version is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "portkey.log"
    node = shutil.which("node") or "node"
    # --headless and NODE_ENV=production: no console UI and no log stream to it.
    cmd = [node, str(PORTKEY_SERVER), f"--port={port}", "--headless"]
    env = _offline_env(NODE_ENV="production")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(workdir)
        )
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream_url + "/v1",
    }
    return OtherGateway("portkey", version, port, UPSTREAM_KEY, headers, proc=proc, log=log)


NOT_INSTALLED = (
    "{name} is not installed in bench/.work/compare (bench/compare/setup.sh {name}): skipped"
)
