"""The relay service: translates OpenAI-shaped calls for one provider family and calls it."""
