"""Local, deterministic simulators of upstream LLM provider HTTP APIs.

They stand in for the real providers in tests, local development and load tests:
``unigate_sim.openai`` simulates the OpenAI API. Run one with ``python -m unigate_sim``.
"""
