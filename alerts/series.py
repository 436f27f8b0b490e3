"""Series selectors for the scenarios: the metric contract's names with their labels."""

from __future__ import annotations

from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items())) + "}"


def scoped(config: StackConfig, metric: str, **pairs: str) -> str:
    """A series of the stack: ``metric{labels}`` with the stack's scope labels (rollout.model.scope)."""
    return metric + labels(**scope.labels(config), **pairs)


class Series:
    """Builds ``metric{labels}`` series of one service of a stack, in the stack's scope."""

    def __init__(self, config: StackConfig, service: str | None = None) -> None:
        self.metrics = config.metrics
        self.service = service or config.services[0].name
        self.config = config

    def _of(self, metric: str, **pairs: str) -> str:
        return scoped(self.config, metric, **pairs)

    def requests(self, track: str, code: str = "200") -> str:
        return self._of(self.metrics.requests_total,
            job=c.JOB_SERVICE, service=self.service, track=track, code=code, instance=f"{self.service}-{track}:8080"
        )

    def bucket(self, track: str, le: str) -> str:
        return self._of(self.metrics.request_duration_bucket,
            job=c.JOB_SERVICE, service=self.service, track=track, le=le, instance=f"{self.service}-{track}:8080"
        )

    def count(self, track: str) -> str:
        return self._of(self.metrics.request_duration_bucket.removesuffix("_bucket") + "_count",
            job=c.JOB_SERVICE, service=self.service, track=track, instance=f"{self.service}-{track}:8080"
        )

    def probe(self, track: str) -> str:
        return self._of(self.metrics.probe_success,
            job=c.JOB_PROBE, service=self.service, track=track, instance=f"http://{self.service}-{track}:8080/healthz"
        )

    def up(self, track: str) -> str:
        return self._of("up", job=c.JOB_SERVICE, service=self.service, track=track, instance=f"{self.service}-{track}:8080")

    def traffic(self, track: str, per_step: int, errors_per_step: int = 0, steps: int = 100) -> dict[str, str]:
        """Request counters of one track: ``per_step`` requests each sample, some 5xx."""
        series = {self.requests(track): f"0+{per_step - errors_per_step}x{steps}"}
        series[self.requests(track, "500")] = f"0+{errors_per_step}x{steps}"
        return series

    def latency(self, track: str, per_step: int, slow_bucket: str | None, steps: int = 100) -> dict[str, str]:
        """Duration buckets of one track: every request fast (<= 0.1 s), or in ``slow_bucket``."""
        bounds = ["0.1", "0.2", "0.5", "1", "2.5", "+Inf"]
        series = {}
        for bound in bounds:
            fast = slow_bucket is None
            reached = fast or float("inf" if bound == "+Inf" else bound) >= float(
                "inf" if slow_bucket == "+Inf" else slow_bucket
            )
            series[self.bucket(track, bound)] = f"0+{per_step if reached else 0}x{steps}"
        series[self.count(track)] = f"0+{per_step}x{steps}"
        return series
