"""The web console's files and routes, without a browser: every label exists in both
languages, nothing is loaded from another origin, the vendored libraries are the published
ones, the channel form serves every declared channel type, and the console claims no API
path."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from starlette.testclient import TestClient

from unigate.channel_types import CHANNEL_TYPES
from unigate_gateway.app import create_app
from unigate_gateway.console import STATIC
from unigate_gateway.console.channel_forms import channel_forms
from unigate_gateway.settings import GatewaySettings

SOURCES = sorted(p for p in STATIC.rglob("*") if p.suffix in {".js", ".html", ".css"})
OWN_SOURCES = [p for p in SOURCES if "vendor" not in p.parts]


def _dict(lang: str) -> dict[str, str]:
    data = json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_both_languages_have_every_label_the_pages_use() -> None:
    used: set[str] = set()
    for path in OWN_SOURCES:
        used |= set(re.findall(r"\bt\(\s*\"([a-z_]+\.[a-z_]+)\"", path.read_text()))
    # Section titles are looked up by name (`settings.section_${section}`).
    settings = (STATIC / "pages" / "settings.js").read_text()
    used |= {f"settings.section_{s}" for s in re.findall(r'\[\s*"([a-z]+)",\s*\[', settings)}
    assert len(used) > 150
    en, zh = _dict("en"), _dict("zh")
    assert used - en.keys() == set()
    assert en.keys() == zh.keys()
    # The Chinese labels are Chinese, not copies of the English ones.
    cjk = re.compile(r"[\u4e00-\u9fff]")
    nav = [k for k in en if k.startswith("nav.")]
    assert nav and all(cjk.search(zh[k]) for k in nav)
    # Every placeholder of a label is in both languages.
    for key, text in en.items():
        assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", zh[key])), key


def test_nothing_is_loaded_from_another_origin() -> None:
    external = re.compile(
        r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|import[^;]*?from\s*["'](?:https?:)?//"""
        r"""|url\(\s*["']?(?:https?:)?//|fetch\(\s*["'](?:https?:)?//"""
    )
    # The one exception: Cloudflare Turnstile's widget, loaded by the sign-up, login and
    # reset forms only while TurnstileCheckEnabled is on (it cannot be served from here).
    turnstile = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit"
    for path in SOURCES:
        text = path.read_text()
        if path.name == "signup.js":
            assert turnstile in text
            text = text.replace(turnstile, "")
        assert not external.search(text), path
    index = (STATIC / "index.html").read_text()
    assets = re.findall(r"""(?:src|href)="([^"]+)\"""", index)
    assert assets and all(a.startswith("/console/") for a in assets)
    for asset in assets:
        assert (STATIC / asset.removeprefix("/console/")).is_file(), asset


def test_vendored_files_are_the_published_ones() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text()
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    )
    assert set(listed) == {"htm-preact.mjs", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in listed.items():
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
    for licence in ("LICENSE-htm.txt", "LICENSE-preact.txt", "LICENSE-uplot.txt"):
        assert (STATIC / "vendor" / licence).stat().st_size > 500


def test_channel_types_served_to_the_form_are_the_registered_ones() -> None:
    forms = channel_forms()
    assert {f["id"] for f in forms} == {t for t in CHANNEL_TYPES if t < 1000}
    by_id = {f["id"]: f for f in forms}
    assert by_id[1]["name"] == CHANNEL_TYPES[1].name
    assert by_id[1]["base_url"] == "https://api.openai.com"
    assert by_id[3]["base_url"] == ""  # Azure: the resource URL must be given
    for f in forms:
        assert f["key_hint"], f
        if f["key_pattern"]:
            re.compile(f["key_pattern"])


@pytest.fixture
def client() -> TestClient:
    # No `with`: the lifespan (NATS, gRPC channels) is not needed to route a request.
    return TestClient(create_app(GatewaySettings()))


def test_the_console_is_served_at_the_root(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    script = client.get("/console/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # Browsers run an ES module only if it is served as JavaScript.
    vendored = client.get("/console/vendor/htm-preact.mjs")
    assert "javascript" in vendored.headers["content-type"]
    # A conditional request is answered without the body (the page revalidates its assets).
    again = client.get("/console/app.js", headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304
    types = client.get("/console/channel-types.json")
    assert types.status_code == 200
    assert types.json() == channel_forms()


def test_the_console_claims_no_api_path(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/no-such-endpoint"),
        ("POST", "/v1/no-such-endpoint"),
        ("GET", "/index.html"),
        ("GET", "/console/../app.py"),
        ("GET", "/console/no-such-file.js"),
    ]:
        resp = client.request(method, path)
        assert resp.status_code == 404, (method, path)
        assert resp.json()["error"]["code"] == "unknown_url", (method, path)
    # A relayed endpoint is still the relay's: without a key it is OpenAI's 401, not a page.
    resp = client.post("/v1/chat/completions", json={})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"
