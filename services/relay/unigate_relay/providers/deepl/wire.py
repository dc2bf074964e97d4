"""DeepL's translate API, used as a chat model.

Reference: DeepL API "Translate text" (``POST /v2/translate`` on ``https://api.deepl.com``,
or ``https://api-free.deepl.com`` for a Free key, which ends in ``:fx``; ``Authorization:
DeepL-Auth-Key <key>``; JSON ``{"text": [...], "target_lang", "show_billed_characters"}`` →
``{"translations": [{"detected_source_language", "text", "billed_characters"}]}``). One API's
mapping (its deepl adaptor): the last message's text is translated into the language the
model names — ``deepl-de`` → ``DE``, ``deepl-en-us`` → ``EN-US``; a bare ``deepl`` → ``ZH``.
"""

from __future__ import annotations

from typing import Any, Final

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

PRO_BASE_URL: Final = "https://api.deepl.com"
FREE_BASE_URL: Final = "https://api-free.deepl.com"
TRANSLATE_PATH: Final = "/v2/translate"


class Unsupported(ValueError):
    """A chat request that cannot be a translation."""


def base_url(channel_base: str, key: str) -> str:
    if channel_base:
        return channel_base.rstrip("/")
    return FREE_BASE_URL if key.endswith(":fx") else PRO_BASE_URL


def target_lang(model: str) -> str:
    """The target language a model name asks for (One API's rule, with regional variants)."""
    _, _, lang = model.partition("-")
    return lang.upper() if lang else "ZH"


def _text(content: Any) -> str:
    try:
        return text_only(content)
    except NonTextPart:
        raise Unsupported("DeepL translates text only.") from None
    except NotContent:
        raise Unsupported("The last message has no text to translate.") from None


def translate_body(chat: dict[str, Any], model: str) -> tuple[dict[str, Any], str]:
    """(the ``/v2/translate`` body, the text translated) for an OpenAI chat request."""
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise Unsupported("`messages` must be a non-empty array.")
    text = _text(messages[-1].get("content"))
    if not text:
        raise Unsupported("The last message has no text to translate.")
    body = {"text": [text], "target_lang": target_lang(model), "show_billed_characters": True}
    return body, text
