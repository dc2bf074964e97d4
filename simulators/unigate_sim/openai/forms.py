"""Reading ``multipart/form-data`` bodies (the audio upload endpoints), and what the call
record keeps of them."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from unigate_sim.openai.json_types import JSONObject


def is_multipart(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


async def read_form(request: Request) -> FormData | None:
    """The parsed form, or None when the body is not valid multipart.

    Starlette needs the ``python-multipart`` package for this.
    """
    try:
        return await request.form()
    except (HTTPException, MultiPartException):
        return None


def form_summary(form: FormData) -> JSONObject:
    """The form's fields, an uploaded file as ``{"filename", "content_type", "size"}``;
    a field sent more than once (``include[]``) as the list of its values."""
    summary: JSONObject = {}
    for key, value in form.multi_items():
        item: Any = value
        if isinstance(value, UploadFile):
            item = {
                "filename": value.filename,
                "content_type": value.content_type,
                "size": value.size,
            }
        if key in summary:
            previous = summary[key]
            summary[key] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            summary[key] = item
    return summary
