"""Flows: orchestration of several domain services with effects beyond one transaction, which the surfaces
(``/v1``, the vendor dialects, channel webhooks, the console) call instead of repeating it. A flow may import
services and schemas; no service imports a flow."""
