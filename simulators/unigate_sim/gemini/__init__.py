"""Strict simulators of Google's Gemini API and of Vertex AI (with its OAuth token endpoint).

Modules: ``errors`` (Google's error bodies), ``validate`` (what a ``GenerateContentRequest``
must be), ``reply`` (the deterministic answer, usage, rendering), ``service`` (generate and
stream, shared), ``app`` (the Gemini API: API keys, paths, embeddings), ``vertex`` (Vertex AI:
service-account JWTs, Bearer tokens, ``predict`` embeddings).
"""

from unigate_sim.gemini.app import create_gemini_app
from unigate_sim.gemini.errors import GoogleError
from unigate_sim.gemini.reply import BLOCK_WORD, MEDIA_PART_TOKENS, prompt_tokens
from unigate_sim.gemini.service import SimState
from unigate_sim.gemini.validate import check_request
from unigate_sim.gemini.vertex import create_vertex_app, new_service_account, register

__all__ = [
    "BLOCK_WORD",
    "MEDIA_PART_TOKENS",
    "GoogleError",
    "SimState",
    "check_request",
    "create_gemini_app",
    "create_vertex_app",
    "new_service_account",
    "prompt_tokens",
    "register",
]
