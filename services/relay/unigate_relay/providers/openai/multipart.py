"""Multipart uploads (audio): passed through as received, or rebuilt when the channel calls
the model by another name."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import aiohttp


def with_model(body: bytes, content_type: str, model: str) -> aiohttp.FormData:
    """The form in ``body`` with its ``model`` field set to ``model``."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form = aiohttp.FormData()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if name == "model":
            form.add_field("model", model)
        elif filename is not None:
            form.add_field(name, data, filename=filename, content_type=part.get_content_type())
        else:
            form.add_field(name, data.decode())
    return form
