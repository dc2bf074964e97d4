"""Multipart uploads (audio): passed through as received, or rebuilt when the channel calls
the model by another name."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.message import Message
from email.parser import BytesParser

import aiohttp


def _parts(body: bytes, content_type: str) -> Iterator[tuple[str, bytes, str | None, Message]]:
    """Each named part of the form: (name, content, filename or None, the part)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        yield name, payload if isinstance(payload, bytes) else b"", part.get_filename(), part


def uploaded_file(body: bytes, content_type: str) -> bytes | None:
    """The content of the form's ``file`` part (the audio), None when there is none."""
    for name, data, filename, _ in _parts(body, content_type):
        if name == "file" and filename is not None:
            return data
    return None


def with_model(body: bytes, content_type: str, model: str) -> aiohttp.FormData:
    """The form in ``body`` with its ``model`` field set to ``model``."""
    form = aiohttp.FormData()
    for name, data, filename, part in _parts(body, content_type):
        if name == "model":
            form.add_field("model", model)
        elif filename is not None:
            form.add_field(name, data, filename=filename, content_type=part.get_content_type())
        else:
            form.add_field(name, data.decode())
    return form
