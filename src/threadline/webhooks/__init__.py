"""Outbound webhooks: endpoints, signed deliveries with retries, the delivery log and replay."""
