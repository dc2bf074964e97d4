"""Simulators of providers that speak an OpenAI-like protocol, built on the OpenAI simulator.

:func:`create_compatible_app` wraps :func:`unigate_sim.openai.create_app` in one provider's
:class:`Profile` (``core``): its path layout (anything else is that provider's 404), its key
check and 401 body (Ollama checks none; xAI refuses a key with 400), the models it serves per
endpoint (Doubao's are endpoint ids), the fields it refuses (Mistral's 422
``extra_forbidden``), which models take images, its error bodies, and where its stream puts
usage. One module per provider says what it does and where that was read:

``deepseek``, ``groq``, ``zhipu``, ``moonshot``, ``qwen``, ``zhinao360``, ``mistral``,
``ollama``, ``xai``, ``siliconflow``, ``together``, ``openrouter``, ``stepfun``, ``lingyi``,
``doubao``, ``baichuan``, ``gemini_openai`` (the Gemini API's OpenAI-compatible endpoint),
``bailian`` (Alibaba Model Studio: ``qwen``'s API under another channel type), ``novita``,
``minimax``, ``spark`` (iFlytek Spark's HTTP API), ``qianfan_v2`` (Baidu Qianfan v2),
``fastgpt`` (an app's chat: the model ignored, placeholder usage).

``app.state`` is the wrapped OpenAI simulator's (``calls`` — with the provider's own paths —,
``fail_next``, ``faults``, ``api_keys``). Answers injected through ``fail_next``/``faults``
are sent as given; the simulator's own refusals are re-worded in the provider's shape.
Streams are rendered whole and then sent, so faults that pace or cut a stream are not
supported here.
"""

from __future__ import annotations

import dataclasses

from unigate_sim.compatible import (
    baichuan,
    deepseek,
    doubao,
    fastgpt,
    gemini_openai,
    groq,
    lingyi,
    minimax,
    mistral,
    moonshot,
    novita,
    ollama,
    openrouter,
    qianfan_v2,
    qwen,
    siliconflow,
    spark,
    stepfun,
    together,
    xai,
    zhinao360,
    zhipu,
)
from unigate_sim.compatible.core import INNER_MODELS, CompatibleSimulator, Profile, ProviderError
from unigate_sim.compatible.deepseek import reasoning_text
from unigate_sim.openai.app import create_app

PROFILES: dict[str, Profile] = {
    module.PROFILE.name: module.PROFILE
    for module in (
        deepseek,
        groq,
        zhipu,
        moonshot,
        qwen,
        zhinao360,
        mistral,
        ollama,
        xai,
        siliconflow,
        together,
        openrouter,
        stepfun,
        lingyi,
        doubao,
        baichuan,
        gemini_openai,
        novita,
        minimax,
        spark,
        qianfan_v2,
        fastgpt,
    )
}
PROFILES[qwen.BAILIAN.name] = qwen.BAILIAN


def create_compatible_app(
    provider: str, api_keys: set[str], models: list[str] | None = None
) -> CompatibleSimulator:
    """A simulator of ``provider`` (a key of :data:`PROFILES`) accepting ``api_keys``.

    ``models`` replaces the chat models served. Ollama ignores keys, but the wrapped
    simulator still needs one: ``api_keys`` must not be empty.
    """
    profile = PROFILES[provider]
    if models is not None:
        served = dict(profile.models)
        served["/chat/completions"] = tuple(models)
        profile = dataclasses.replace(profile, models=served)
    inner = create_app(api_keys, [*profile.chat_models, *INNER_MODELS.values()])
    return CompatibleSimulator(profile, inner)


__all__ = [
    "PROFILES",
    "CompatibleSimulator",
    "Profile",
    "ProviderError",
    "create_compatible_app",
    "reasoning_text",
]
