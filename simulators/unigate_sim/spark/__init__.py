"""A strict simulator of iFlytek Spark's WebSocket chat API.

It is a real WebSocket server (the ``websockets`` library) that checks the handshake the way
iFlytek's gateway does (https://www.xfyun.cn/doc/spark/general_url_authentication.html): the
``authorization``/``date``/``host`` query parameters, the HMAC-SHA256 signature recomputed with
the app's APISecret (401), the date within 300 s (403), a known path (404). It then reads one
request frame and checks it (https://www.xfyun.cn/doc/spark/Web.html): the ``app_id`` of the
key's app (11200), the ``domain`` of the path, parameter ranges and message shapes (10163), the
token limit of the domain (10907). Answers are deterministic:

* ``"Echo: " + <last user message>``, cut to ``max_tokens``, in several frames with status
  0, 1, …, 2 and usage (``question_tokens``, ``prompt_tokens``, ``completion_tokens``,
  ``total_tokens``, counted with the simulators' tokenizer) in the last;
* with ``payload.functions`` and a last user message that mentions the weather, a
  ``function_call`` of the first function, with arguments made from its schema.

:class:`SparkSimulator` keeps ``calls`` (one dict per handshake that passed: ``path``,
``frame``, ``code`` and the ``usage`` it reported), ``refusals`` (handshakes refused) and
``faults`` (``(code, message)`` the next requests are answered with).
:class:`SparkServer` serves it from a background thread.
"""

from unigate_sim.spark.server import SparkApp, SparkServer, SparkSimulator
from unigate_sim.spark.signing import DOMAINS_BY_PATH, expected_signature

__all__ = ["DOMAINS_BY_PATH", "SparkApp", "SparkServer", "SparkSimulator", "expected_signature"]
