"""Process-wide defaults that services read without being handed the settings each time."""

from __future__ import annotations

from threadline.config import Settings


def configure_services(settings: Settings) -> None:
    """Apply ``settings`` to the services' module defaults (every process does this at start-up)."""
    from threadline.channels import outbox
    from threadline.jobs import service as jobs
    from threadline.runs import service as runs

    jobs.configure_defaults(max_attempts=settings.job_max_attempts)
    runs.configure(
        max_attempts=settings.run_max_attempts,
        debounce_s=settings.run_debounce_s,
        debounce_messaging_s=settings.run_debounce_messaging_s,
    )
    outbox.configure(max_attempts=settings.channel_send_max_attempts)
