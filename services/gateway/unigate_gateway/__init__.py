"""The gateway: the public HTTP edge (OpenAI-compatible API), stateless and horizontally scaled."""
