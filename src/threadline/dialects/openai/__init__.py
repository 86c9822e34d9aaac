"""OpenAI's Conversations and Responses APIs under ``/openai/v1``, served from threadline's store
(docs/dialects/openai.md)."""
