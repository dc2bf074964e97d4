"""OpenAI's BPE encodings, loaded from data shipped inside this package (never downloaded).

The ``*.tiktoken.gz`` files are OpenAI's published encoding files, gzipped; each is checked
against the SHA-256 that tiktoken itself expects before use. tiktoken's own constructors in
``tiktoken_ext.openai_public`` supply the split pattern and special tokens: only the loader
they call is pointed at the bundled files instead of the network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources
from typing import Any

import tiktoken
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

#: The encodings shipped, by tiktoken's name.
BUNDLED = ("o200k_base", "cl100k_base")

_lock = threading.Lock()


class EncodingDataError(RuntimeError):
    """A bundled encoding file is missing or does not match tiktoken's expected hash."""


def _bundled_ranks(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    name = blobpath.rsplit("/", 1)[-1]  # ".../encodings/o200k_base.tiktoken"
    resource = resources.files("unigate.tokenizer").joinpath("data").joinpath(name + ".gz")
    try:
        contents = gzip.decompress(resource.read_bytes())
    except FileNotFoundError as exc:
        raise EncodingDataError(f"no bundled data for {name}") from exc
    if expected_hash and hashlib.sha256(contents).hexdigest() != expected_hash:
        raise EncodingDataError(f"bundled {name} does not match tiktoken's expected hash")
    # The format tiktoken publishes: one "<base64 token> <rank>" per line.
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }


_built: dict[str, tiktoken.Encoding] = {}


def get_encoding(name: str) -> tiktoken.Encoding:
    """One of the bundled encodings (``o200k_base``, ``cl100k_base``), built once."""
    found = _built.get(name)
    if found is not None:
        return found
    if name not in BUNDLED:
        raise ValueError(f"encoding {name!r} is not bundled")
    constructor = openai_public.ENCODING_CONSTRUCTORS[name]
    # The constructors look the loader up in their module's globals at call time; swap it
    # for the duration of the call only, under a lock, as the swap is process-wide (and one
    # build per encoding is enough: it takes about half a second).
    with _lock:
        if name in _built:
            return _built[name]
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _bundled_ranks
        try:
            spec: dict[str, Any] = constructor()
        finally:
            openai_public.load_tiktoken_bpe = original
        _built[name] = tiktoken.Encoding(**spec)
        return _built[name]


def warm_up() -> None:
    """Build every bundled encoding now (blocking; run it in a thread at start-up) so that the
    first call that needs counting does not pay for it."""
    for name in BUNDLED:
        get_encoding(name)
