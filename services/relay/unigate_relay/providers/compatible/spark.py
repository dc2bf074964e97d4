"""iFlytek Spark's OpenAI-compatible HTTP API, One API's "讯飞星火认知大模型 v2" (type 48):
``https://spark-api-open.xf-yun.com/v1/chat/completions`` with ``Authorization: Bearer
<APIPassword>`` (the console's HTTP password, not the WebSocket APIKey/APISecret pair that
type 18 signs with). Models by version name: ``lite``, ``generalv3`` (Pro), ``pro-128k``,
``generalv3.5`` (Max), ``max-32k``, ``4.0Ultra``. A stream's finishing frame carries the
usage."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=48,
    name="iFlytek Spark v2",
    default_base_url="https://spark-api-open.xf-yun.com",
    path_prefix="/v1",
    default_models=("lite", "generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"),
)

CHANNEL = declare_spec(SPEC, key_hint="APIPassword", gen_ai_system="xunfei")
