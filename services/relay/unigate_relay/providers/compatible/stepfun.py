"""StepFun (https://platform.stepfun.com/docs/api-reference): OpenAI-style API under
``/v1``."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=32,
    name="StepFun",
    default_base_url="https://api.stepfun.com/v1",
    default_models=("step-1-8k", "step-1-32k", "step-2-16k", "step-1v-8k"),
)

CHANNEL = declare_spec(SPEC)
