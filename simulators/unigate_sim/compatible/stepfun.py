"""StepFun (https://platform.stepfun.com/docs/api-reference/chat/chat-completion-create):
OpenAI-style API under ``/v1``, errors in OpenAI's shape; stream usage when asked. Only the
``step-1v-*`` models take images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="stepfun",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("step-1-8k", "step-1-32k", "step-2-16k", "step-1v-8k")},
    render_error=openai_shape(
        {"auth": "invalid_api_key", "model_not_found": "invalid_model"}, codes={}
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "Incorrect API key provided",
        "model_not_found": "model not found: {model}",
        "invalid_request": "{message}",
        "image_unsupported": "model {model} does not support image input",
    },
    vision_models=frozenset({"step-1v-8k"}),
)
