"""Prometheus metrics: every metric object of a process, on a registry of its own.

One :class:`Metrics` per app (or per ``threadline worker`` process), each with its own
``CollectorRegistry`` rather than prometheus-client's global one, so several apps in one process (the
tests) never collide. Requests are recorded by ``RequestContextMiddleware``, finished jobs by the
``Worker``; job queue depth is counted in the database by an async refresher (every few seconds) and
only read from that cache at scrape time, so scrapes never touch the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.models.enums import JobState

log = structlog.get_logger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "UNMATCHED_ROUTE", "Metrics", "refresh_periodically"]

UNMATCHED_ROUTE = "unmatched"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# Anything else a client sends as a method is counted as "other": labels must stay a small set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
JOB_OUTCOMES = ("succeeded", "retry", "dead")
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class JobQueueCollector(Collector):
    """``threadline_jobs{state}``: jobs per state, from the last refresh (nothing before the first)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None
        self.refreshed_at: float | None = None  # time.monotonic()

    def update(self, counts: dict[str, int]) -> None:
        self.counts = {state.value: int(counts.get(state.value, 0)) for state in JobState}
        self.refreshed_at = time.monotonic()

    def collect(self) -> Iterable[Metric]:
        counts = self.counts
        if counts is None:
            return []
        gauge = GaugeMetricFamily("threadline_jobs", "Jobs in the queue table per state.", labels=["state"])
        for state, n in counts.items():
            gauge.add_metric([state], n)
        return [gauge]

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("threadline_jobs", "Jobs in the queue table per state.", labels=["state"])


class Metrics:
    """The metric objects of one app or worker process, registered on ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http_requests = Counter(
            "threadline_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            "threadline_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.jobs_completed = Counter(
            "threadline_jobs_completed",
            "Job attempts finished, by kind and outcome (succeeded, retry, dead).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "threadline_job_duration_seconds",
            "Time one job attempt took, by kind.",
            ["kind"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.sse_subscribers = Gauge(
            "threadline_sse_subscribers", "Live event streams open in this process.", registry=self.registry
        )
        self.sse_events_sent = Counter(
            "threadline_sse_events_sent", "Events written to live streams by this process.", registry=self.registry
        )
        self.webhook_attempts = Counter(
            "threadline_webhook_attempts",
            "Webhook delivery attempts, by outcome: succeeded (2xx), http_error, timeout, network_error, refused "
            "(an address the SSRF guard refused), internal_error.",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempt_duration = Histogram(
            "threadline_webhook_attempt_duration_seconds",
            "Time one webhook delivery attempt took, from resolving the host to the end of the answer.",
            buckets=WEBHOOK_BUCKETS,
            registry=self.registry,
        )
        self.channel_sends = Counter(
            "threadline_channel_sends",
            "Attempts to hand an SMS or WhatsApp message to its provider, by channel and outcome: sent, retry "
            "(a transient failure, tried again), failed (refused, out of attempts, or maybe sent: not retried).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.channel_send_duration = Histogram(
            "threadline_channel_send_duration_seconds",
            "Time one provider call took, by channel.",
            ["channel"],
            buckets=WEBHOOK_BUCKETS,
            registry=self.registry,
        )
        self.job_queue = JobQueueCollector()
        self.registry.register(self.job_queue)

    # ------------------------------------------------------------------------------------ recording

    def observe_request(self, method: str, route: str | None, status: int, duration_s: float) -> None:
        method = method if method in _METHODS else "other"
        route = route or UNMATCHED_ROUTE
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_request_duration.labels(method, route).observe(duration_s)

    def observe_job(self, kind: str, outcome: str, duration_s: float) -> None:
        self.jobs_completed.labels(kind, outcome).inc()
        self.job_duration.labels(kind).observe(duration_s)

    def observe_webhook(self, outcome: str, duration_s: float) -> None:
        self.webhook_attempts.labels(outcome).inc()
        self.webhook_attempt_duration.observe(duration_s)

    def observe_channel_send(self, channel: str, outcome: str, duration_s: float) -> None:
        self.channel_sends.labels(channel, outcome).inc()
        self.channel_send_duration.labels(channel).observe(duration_s)

    async def refresh_job_counts(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """``SELECT state, count(*) FROM jobs GROUP BY state`` into the queue depth gauge's cache."""
        from threadline.jobs.repository import JobRepository

        async with sessionmaker() as session:
            counts = await JobRepository(session).count_by_state()
        self.job_queue.update({str(state): n for state, n in counts.items()})

    # ------------------------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """The registry in the Prometheus text format (content type :data:`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


async def refresh_periodically(
    metrics: Metrics, sessionmaker: async_sessionmaker[AsyncSession], interval_s: float
) -> None:
    """Refresh the job queue depth every ``interval_s`` seconds until cancelled."""
    while True:
        try:
            await metrics.refresh_job_counts(sessionmaker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database being away must not end the refresher
            log.warning("metrics.refresh_failed", error=repr(exc))
        await asyncio.sleep(interval_s)
