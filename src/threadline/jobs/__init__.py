"""Durable jobs: a table-backed queue (``service.enqueue``), a worker loop and a task registry."""
