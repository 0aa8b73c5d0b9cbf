"""A team's own arrival history from Prometheus, for `surge simulate --from-prometheus`.

Reads a range query with prometheus-api-client and hands the per-priority rates to
`simulate.traffic.arrivals_from_rates`. By default the query is what the gateway offered
(accepted + refused writes, per `priority` label); `--query` takes any PromQL that returns
per-second rates with a `priority` label (e.g. the stream's message rate per subject,
relabelled). Without a `priority` label a series counts as `normal`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from surge_operator.api import Priority
from surge_operator.simulate.traffic import Arrivals, arrivals_from_rates

#: Offered writes per second per priority: accepted plus refused at the gateway.
OFFERED_QUERY = (
    'sum by (priority) (rate({{__name__=~"surge_gateway_messages_(accepted|rejected)_total"}}'
    "[{window}]))"
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class HistoryError(ValueError):
    """The range or the query cannot be read: says which and why."""


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1d' -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise HistoryError(f"--range: expected a duration like 90s, 30m, 2h or 1d, got {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_end(text: str | None) -> datetime:
    if text is None or text == "now":
        return datetime.now(UTC)
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise HistoryError(f"--end: expected an ISO 8601 time or 'now', got {text!r}") from None
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def read_history(
    url: str,
    *,
    range_s: float,
    end: datetime,
    step_s: float = 1.0,
    query: str | None = None,
    max_replicas: int = 60,
) -> Arrivals:
    """Arrivals per second over [end - range_s, end] from Prometheus at `url`."""
    from prometheus_api_client import PrometheusConnect

    window = f"{max(int(4 * step_s), 4)}s"  # rate() needs a few scrapes in its window
    promql = query or OFFERED_QUERY.format(window=window)
    start = end - timedelta(seconds=range_s)
    try:
        client = PrometheusConnect(url=url, disable_ssl=True)
        result: Any = client.custom_query_range(
            query=promql, start_time=start, end_time=end, step=f"{step_s:g}s"
        )
    except Exception as err:  # the client raises plain Exceptions and requests errors
        raise HistoryError(f"{url}: {promql!r}: {err}") from err
    series: dict[Priority, list[tuple[float, float]]] = {}
    for item in result or []:
        name = (item.get("metric") or {}).get("priority", Priority.NORMAL.value)
        try:
            priority = Priority(name)
        except ValueError:
            continue
        series.setdefault(priority, []).extend(_points(item.get("values", [])))
    if not series:
        raise HistoryError(f"{url}: {promql!r} returned no series between {start} and {end}")
    return arrivals_from_rates(
        f"prometheus {start:%Y-%m-%dT%H:%M:%S}Z+{range_s:g}s",
        series,
        step_s=step_s,
        max_replicas=max_replicas,
    )


def _points(values: Sequence[Any]) -> list[tuple[float, float]]:
    points = []
    for pair in values:
        try:
            t, v = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError) as err:
            raise HistoryError(f"unexpected sample {pair!r}") from err
        if math.isfinite(v):
            points.append((t, v))
    return points
