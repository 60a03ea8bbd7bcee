"""The service's Prometheus metrics, in a registry of its own (two apps in one process, as in
tests, never share counters). ``GET /metrics`` serves them in the text exposition format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: paths counted under their own name; anything else is "other", so that clients probing random
#: paths cannot grow the number of series without bound
KNOWN_PATHS = frozenset(
    {
        "/",
        "/score",
        "/diagnose",
        "/model",
        "/health",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def path_label(path: str) -> str:
    """The ``path`` label of a request path."""
    return path if path in KNOWN_PATHS else "other"


class ServiceMetrics:
    """Every metric of one service, registered in ``self.registry``."""

    def __init__(self, *, version: str, model_id: str, pixel_budget: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "reiqa_requests",
            "HTTP requests answered, by method, path and status",
            ["method", "path", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "reiqa_request_duration_seconds",
            "Time from a request's headers to its response, by path",
            ["path"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.images = Counter(
            "reiqa_images",
            "Uploaded images by outcome: scored, or failed (a per-file error)",
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "reiqa_batch_size_images",
            "Images in one encoder batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.queue_depth = Gauge("reiqa_queue_depth_images", "Images waiting for the encoders", registry=r)
        self.in_progress = Gauge(
            "reiqa_requests_in_progress", "POST /score and /diagnose requests being answered", registry=r
        )
        self.pixels_in_flight = Gauge(
            "reiqa_pixels_in_flight", "Decoded pixels reserved by requests being answered", registry=r
        )
        self.pixels_peak = Gauge(
            "reiqa_pixels_in_flight_peak",
            "The most decoded pixels reserved at once since the start",
            registry=r,
        )
        self.pixel_budget = Gauge(
            "reiqa_pixel_budget",
            "Most decoded pixels in flight across all requests (--inflight-megapixels)",
            registry=r,
        )
        self.pixel_budget.set(pixel_budget)
        self.rejected = Counter(
            "reiqa_rejected_requests",
            "Requests refused before scoring, by reason (busy, pixels, timeout, too-large, bad-request)",
            ["reason"],
            registry=r,
        )
        self.disconnects = Counter(
            "reiqa_client_disconnects", "Requests whose client went away before the answer", registry=r
        )
        self.info = Gauge(
            "reiqa_build_info", "The running version and model", ["version", "model_id"], registry=r
        )
        self.info.labels(version=version, model_id=model_id).set(1)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
