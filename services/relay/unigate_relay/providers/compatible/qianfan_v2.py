"""Baidu Qianfan's OpenAI-compatible v2 API, One API's "百度文心千帆 V2" (type 47):
``https://qianfan.baidubce.com/v2/chat/completions`` with ``Authorization: Bearer
<API key>`` (an IAM API key ``bce-v3/...``, not type 15's OAuth access token). Answers and
errors are OpenAI's shape; a stream reports usage when ``stream_options.include_usage`` asks."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=47,
    name="Baidu Qianfan v2",
    default_base_url="https://qianfan.baidubce.com",
    path_prefix="/v2",
    default_models=("ernie-4.0-turbo-8k", "ernie-3.5-8k", "ernie-speed-128k", "deepseek-v3"),
)

CHANNEL = declare_spec(SPEC, key_hint="bce-v3/...", gen_ai_system="baidu")
