"""The agent runtime: runs, context building, providers (LLM APIs, the local model), tools and flows."""
