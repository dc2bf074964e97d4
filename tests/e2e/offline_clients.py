"""Third-party clients that reach for the internet on their own (LiteLLM fetches its model
cost map when imported, with retries that take seconds each), made to stay on this machine:
LiteLLM is imported here, with its bundled cost map and offline mode, before any test
module imports it; and ``loopback_only`` fails a test whose process looks up any host other
than the loopback (a client that phones home would otherwise hang on DNS without a network).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

# Read by LiteLLM at import time: the cost map bundled with the package, and no catalog,
# check or tokenizer fetched from anywhere but the api_base a call names.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"

import litellm

# No callbacks (logging integrations send to third parties); LiteLLM 1.110's SDK has no
# telemetry of its own (only its proxy has, off unless consented), so there is no switch.
litellm.success_callback = []
litellm.failure_callback = []
litellm.callbacks = []
# No "Give Feedback" banner printed with each exception.
litellm.suppress_debug_info = True

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every host name resolved in this process during the test must be the loopback; any
    other is refused at once (no DNS wait) and fails the test."""
    real = socket.getaddrinfo
    strays: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            strays.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: no network in tests")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield strays
    assert strays == [], f"the client looked up hosts beyond this machine: {strays}"


__all__ = ["litellm", "loopback_only"]
