"""Comma-separated lists as the records store them (a channel's models and groups, a key's
models and subnets): the one place they are split."""

from __future__ import annotations


def split_list(text: str) -> list[str]:
    """The non-empty, stripped items of ``text``, in order."""
    return [p.strip() for p in text.split(",") if p.strip()]
