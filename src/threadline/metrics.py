"""Prometheus metrics: every metric object of a process, on a registry of its own.

One :class:`Metrics` per app (or per ``threadline worker`` process), each with its own
``CollectorRegistry`` rather than prometheus-client's global one, so several apps in one process (the
tests) never collide. Requests are recorded by ``RequestContextMiddleware``, finished jobs by the
``Worker``, ended runs and provider errors by the run runtime; job queue depth is counted in the database
by an async refresher (every few seconds) and only read from that cache at scrape time, so scrapes never
touch the database.
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

__all__ = ["CONTENT_TYPE_LATEST", "RUN_OUTCOMES", "UNMATCHED_ROUTE", "Metrics", "refresh_periodically"]

UNMATCHED_ROUTE = "unmatched"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# Anything else a client sends as a method is counted as "other": labels must stay a small set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# "failed": the job is done (not retried) but the work it carried failed for good, e.g. a run that failed.
JOB_OUTCOMES = ("succeeded", "failed", "retry", "dead")
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_OUTCOMES = ("completed", "failed", "cancelled")
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


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
            "Job attempts finished, by kind and outcome: succeeded, failed (done, not retried, but the work it "
            "carried failed, e.g. a run that failed), retry, dead.",
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
        self.runs = Counter(
            "threadline_runs",
            "Agent runs ended, by agent (public id), provider, model and outcome (completed, failed, cancelled).",
            ["agent", "provider", "model", "outcome"],
            registry=self.registry,
        )
        self.run_time_to_first_token = Histogram(
            "threadline_run_time_to_first_token_seconds",
            "From a run's start to the first token of its answer, by provider and model.",
            ["provider", "model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "threadline_run_duration_seconds",
            "From a run's start to its end (every model call and tool call of it), by provider and model.",
            ["provider", "model"],
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        run_labels = ["agent", "provider", "model"]
        self.run_input_tokens = Counter(
            "threadline_run_input_tokens",
            "Input (prompt) tokens of ended runs, by agent, provider and model.",
            run_labels,
            registry=self.registry,
        )
        self.run_output_tokens = Counter(
            "threadline_run_output_tokens",
            "Output (completion) tokens of ended runs, by agent, provider and model.",
            run_labels,
            registry=self.registry,
        )
        self.run_tool_calls = Counter(
            "threadline_run_tool_calls",
            "Tool calls made by ended runs, by agent, provider and model.",
            run_labels,
            registry=self.registry,
        )
        self.run_model_calls = Counter(
            "threadline_run_model_calls",
            "Model calls (iterations of the tool loop) made by ended runs, by agent, provider and model.",
            run_labels,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "threadline_provider_errors",
            "Errors of model providers, by provider and kind (provider_unavailable, rate_limited, provider_error, "
            "timeout, empty_output...).",
            ["provider", "kind"],
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

    def observe_run(
        self,
        *,
        agent: str,
        provider: str | None,
        model: str | None,
        outcome: str,
        duration_s: float,
        ttft_s: float | None,
        input_tokens: int,
        output_tokens: int,
        tool_calls: int,
        iterations: int,
    ) -> None:
        """One run that ended: ``agent`` its agent's public id, ``outcome`` one of :data:`RUN_OUTCOMES`;
        ``ttft_s`` None when no token came (a failure first, a FLOW agent), and then it is not observed.
        A run without a provider or model (a FLOW agent) is labelled with empty strings."""
        provider, model = provider or "", model or ""
        self.runs.labels(agent, provider, model, outcome).inc()
        self.run_duration.labels(provider, model).observe(max(0.0, duration_s))
        if ttft_s is not None:
            self.run_time_to_first_token.labels(provider, model).observe(max(0.0, ttft_s))
        # Counters only go up: a negative figure from a provider would make prometheus-client raise.
        self.run_input_tokens.labels(agent, provider, model).inc(max(0, input_tokens))
        self.run_output_tokens.labels(agent, provider, model).inc(max(0, output_tokens))
        self.run_tool_calls.labels(agent, provider, model).inc(max(0, tool_calls))
        self.run_model_calls.labels(agent, provider, model).inc(max(0, iterations))

    def observe_provider_error(self, *, provider: str, kind: str) -> None:
        """One error of a model call: ``kind`` is the ProviderError's code."""
        self.provider_errors.labels(provider, kind).inc()

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
