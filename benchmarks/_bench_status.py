"""A run's calls by status, and one measurement's failure kept from losing the others.

Every served measurement is taken between two reads of the server's per-status request
counter (`scann_serving_requests_total` on its metrics page). The difference is the run's
calls by status. Two kinds of non-OK call are told apart:

* end-of-run cancellations: an h2load timed run (`-D`) cancels the calls still in flight
  when its time is up (at most one per connection), and the asyncio server counts those
  as CANCELLED. They are not failures;
* real errors: every other non-OK status, CANCELLED beyond what the end of the run
  explains, and what the client itself saw fail (a non-200 response, a failed Python call).

`measure` runs one measurement and stores its result, or `{"failed": reason}`, then saves
the results file, so a crash or a failing configuration keeps what was already measured.
"""

from __future__ import annotations

import re
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

from _bench_data import log

#: A failure reason in the report is cut to this many characters (the log has the rest).
REASON_CHARS = 240


def metrics_page(rest_url: str) -> str:
    """The server's Prometheus text."""
    with urllib.request.urlopen(rest_url + "/monitoring/prometheus/metrics", timeout=30) as r:
        return str(r.read().decode())


def request_counts(rest_url: str) -> dict[str, float]:
    """Calls the server has answered, by status ("OK", "NOT_FOUND", ...), from its counter."""
    counts: dict[str, float] = {}
    pattern = r'^scann_serving_requests_total\{[^}]*status="(\w+)"[^}]*\} (\S+)$'
    for status, value in re.findall(pattern, metrics_page(rest_url), re.M):
        counts[status] = counts.get(status, 0.0) + float(value)
    return counts


def failed_calls(rest_url: str) -> float:
    """Calls the server answered with a status other than OK."""
    return sum(n for status, n in request_counts(rest_url).items() if status != "OK")


def status_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Calls by status between two reads of the counter (statuses with none left out)."""
    delta = {s: int(after.get(s, 0) - before.get(s, 0)) for s in after.keys() | before.keys()}
    return {s: n for s, n in sorted(delta.items()) if n}


def classify(statuses: dict[str, int], cancellable_at_end: int = 0, client_errors: int = 0) -> dict:
    """Splits a run's non-OK calls into end-of-run cancellations and real errors.

    Args:
        statuses: The run's calls by server status (`status_delta`).
        cancellable_at_end: Calls the client may have abandoned when its time was up (at
            most one per connection of a timed run).
        client_errors: Calls the client saw fail that the server may not have counted.
    """
    cancelled = statuses.get("CANCELLED", 0)
    end_of_run = min(cancelled, cancellable_at_end)
    other = sum(n for s, n in statuses.items() if s not in ("OK", "CANCELLED"))
    return {
        "statuses": statuses,
        "end_of_run_cancelled": end_of_run,
        "real_errors": other + cancelled - end_of_run + client_errors,
    }


def counted(rest_url: str | None, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()`'s result with the calls it caused by status and its real errors.

    Without a metrics page (`rest_url` None: a server that is not ours) only the client's
    own counts (`http_errors`, `client_errors`) decide."""
    before = request_counts(rest_url) if rest_url else {}
    result = run()
    statuses = status_delta(before, request_counts(rest_url)) if rest_url else {}
    client_errors = result.get("http_errors", 0) + result.get("client_errors", 0)
    result.update(classify(statuses, result.get("cancellable_at_end", 0), client_errors))
    return result


def reason(exc: BaseException) -> str:
    """A one-line failure reason: the exception's type, first and last lines (server logs
    in a start failure end with the line that says why)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return f"{type(exc).__name__}: {text}"[:REASON_CHARS]


def failed(result: Any) -> str | None:
    """The failure reason when `result` is a measurement that failed, else None."""
    return result.get("failed") if isinstance(result, dict) else None


def measure(out: dict[str, Any], key: str, run: Callable[[], Any], save: Callable[[], None]) -> Any:
    """`out[key] = run()`, or `{"failed": reason}` when it raises; saves either way.

    Returns the result (None when it failed). KeyboardInterrupt and SystemExit propagate:
    the run is being stopped, and what was measured is already saved."""
    try:
        out[key] = run()
    except Exception as exc:  # isolated: recorded as a failed row, the run goes on
        out[key] = {"failed": reason(exc)}
        log(f"  {key} FAILED: {out[key]['failed']}")
        log("".join(traceback.format_exception(exc)).rstrip())
    finally:
        save()
    return None if failed(out.get(key)) else out.get(key)


#: Figures a row of several rounds reports as the median round's (the rest are summed).
MEDIAN_FIELDS = (
    "qps",
    "p50_ms",
    "p99_ms",
    "mean_ms",
    "server_cpu_us_per_call",
    "mean_batch_size",
    "rows_per_s",
)
SUMMED_FIELDS = ("calls", "n", "http_errors", "end_of_run_cancelled", "real_errors")


def merge_rounds(results: list[dict[str, Any]], failures: int = 0) -> dict[str, Any]:
    """One row from several rounds of the same measurement: the median of each figure,
    the sum of every count (so no round's errors are lost), and each round's p50, q/s and
    server CPU per call under `rounds`; `failed_rounds` when some rounds failed."""
    import statistics

    merged = dict(results[len(results) // 2])
    for field in MEDIAN_FIELDS:
        values = [r[field] for r in results if r.get(field) is not None]
        if values:
            merged[field] = statistics.median(values)
    for field in SUMMED_FIELDS:
        if any(field in r for r in results):
            merged[field] = sum(r.get(field, 0) for r in results)
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result.get("statuses", {}).items():
            statuses[status] = statuses.get(status, 0) + count
    merged["statuses"] = statuses
    merged["real_errors"] = merged.get("real_errors", 0)
    merged["rounds"] = [
        {key: r.get(key) for key in ("p50_ms", "qps", "server_cpu_us_per_call")} for r in results
    ]
    if failures:
        merged["failed_rounds"] = failures
    return merged


def measure_rounds(
    out: dict[str, Any],
    rows: list[tuple[str, Callable[[], Any]]],
    rounds: int,
    save: Callable[[], None],
    report: Callable[[str, dict[str, Any]], None] = lambda key, result: None,
) -> None:
    """Each of `rows` measured `rounds` times, the rounds interleaved (a, b, c, a, b, c,
    ...), so a change in the machine's load during the run reaches every row alike and the
    ratios between rows (a Predict against the no-op on the same server) hold. Each row
    keeps the median round (`merge_rounds`); a row whose every round failed stays failed.
    `out[key]` holds the latest round while the rounds run, so a crash keeps it."""
    taken: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in rows}
    failures = dict.fromkeys(taken, 0)
    for _ in range(rounds):
        for key, run in rows:
            result = measure(out, key, run, save)
            if result is None:
                failures[key] += 1
            else:
                taken[key].append(result)
                report(f"{key} (round {len(taken[key])}/{rounds})", result)
    for key, results in taken.items():
        if results:
            out[key] = merge_rounds(results, failures[key])
            report(f"{key} (median of {len(results)})", out[key])
    save()
