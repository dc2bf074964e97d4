"""What the DeepL package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        38,
        "DeepL",
        key_hint="DeepL API key (a Free key ends in :fx and goes to api-free.deepl.com)",
        config_hint="The model names the target language: deepl-de, deepl-en-us, deepl-zh, …",
        models=("deepl-zh", "deepl-en", "deepl-ja", "deepl-de", "deepl-fr"),
    ),
)
# No default base URL is declared: a Free key needs api-free.deepl.com, a Pro key
# api.deepl.com; the adapter picks by the key when the channel names none.
