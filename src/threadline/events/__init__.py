"""Events: the per-workspace log written with each change, and its live fan-out (SSE, webhooks)."""
