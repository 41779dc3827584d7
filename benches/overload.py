"""Overload, side by side: latency of served requests and shedding, per middleware and server.

The app (benches/overload_app.py): a Starlette route that awaits 10 ms then burns 1 ms of CPU,
served by one uvicorn process pinned to CPU 0; the load generator (benches/loadgen.py: open
loop, a new connection per request, latency to the last byte of the body) runs in this process,
pinned to CPU 1. Scenarios:

- ``unloaded``: open loop at a low rate (100 req/s): the latency a request gets when nothing
  waits;
- ``overload``: open loop at twice the bare app's capacity for 4 s. The capacity is measured
  first, per server configuration: requests served per second of the server's CPU time with 32
  clients back to back (per CPU second, so that another process taking part of the server's
  core during that measure does not lower the rate); ``--rate`` sets the rate instead;
- ``burst``: 1,500 connections opened at once.

Variants (``--variants``), each under every server configuration (``--servers``):

- ``bare``: the app alone;
- ``ratelimit``: ``RateLimitMiddleware`` alone, a per-client limit no run reaches;
- ``limit-concurrency``: the bare app under ``uvicorn --limit-concurrency 20``;
- ``overload-8``: ``OverloadMiddleware(max_in_flight=8)``: no queue, 503 + ``Retry-After``;
- ``overload-auto``: ``OverloadMiddleware(max_in_flight="auto")``.

Server configurations: ``h11`` (``--http h11 --loop asyncio``) and ``httptools``
(``--http httptools --loop uvloop``). Every server runs for the whole bench (an idle one costs
nothing); the runs of a scenario go through all (server, variant) pairs, in reverse order every
other scenario, so that drift on the machine hits all alike. After each run the bench waits
until the server has no request in flight before the next.

Per scenario, a table: served (2xx) and shed (503) counts, other statuses, p50/p99/max latency
of served requests, p99 of shed ones, how many shed responses carried ``Retry-After``, client
errors. For the burst, a second table tells where the server's time went (see ``--help``).

    cd /tmp && /path/to/venv/bin/python /path/to/checkout/benches/overload.py
    #   --quick   short runs, h11 only, under a minute
    #   --scenario unloaded,overload,burst   --variants bare,overload-8   --servers h11,httptools
    #   --rate R (overload arrivals per second)   --burst N (1500)
    #   --chart docs/images/overload.png
    #   --json PATH (every summary, for later)

Needs uvicorn, httptools, uvloop and Starlette (``pip install 'uvicorn[standard]' starlette``)
and the package installed; matplotlib only for ``--chart``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))  # loadgen and overload_app, when run from elsewhere

import loadgen  # noqa: E402

SERVERS = {
    "h11": ["--http", "h11", "--loop", "asyncio"],
    "httptools": ["--http", "httptools", "--loop", "uvloop"],
}
SERVER_LABELS = {"h11": "h11/asyncio", "httptools": "httptools/uvloop"}


@dataclass(frozen=True)
class Variant:
    label: str
    short: str  # for the chart
    app: str  # BENCH_VARIANT of overload_app
    uvicorn_args: tuple[str, ...] = ()


VARIANTS = {
    "bare": Variant("bare app", "bare", "bare"),
    "ratelimit": Variant("RateLimitMiddleware alone", "RateLimit", "ratelimit"),
    "limit-concurrency": Variant(
        "uvicorn --limit-concurrency 20",
        "--limit-concurrency",
        "bare",
        ("--limit-concurrency", "20"),
    ),
    "overload-8": Variant("OverloadMiddleware, 8 in flight, no queue", "Overload 8", "overload-8"),
    "overload-auto": Variant('OverloadMiddleware "auto"', "Overload auto", "overload-auto"),
}
SCENARIOS = ("unloaded", "overload", "burst")
SHED_STATUS = 503
CLIENT_TIMEOUT = 10.0


def server_cpu() -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", "0"]
    return []


def pin_self_to_client_cpu() -> str:
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
        return "server on CPU 0, load generator on CPU 1"
    return "one CPU: server and load generator share it"


@dataclass
class Server:
    name: str  # "<server>/<variant>"
    server: str
    variant: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def probe(self, records: bool = False) -> dict[str, object]:
        """The app's count of requests in flight (and with ``records``, its records since the
        last such call, which it then clears)."""
        path = "_probe/records" if records else "_probe"
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return dict(json.load(response))

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no request is in flight in the app (a bare app under overload goes on working
        on requests whose clients gave up), then a short rest for the sockets to settle."""
        deadline = time.monotonic() + timeout
        while self.probe()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(server: str, variant: str) -> Server:
    port = loadgen.free_port()
    process = subprocess.Popen(
        [
            *server_cpu(),
            sys.executable,
            "-m",
            "uvicorn",
            "overload_app:app",
            "--app-dir",
            str(BENCHES),
            "--port",
            str(port),
            "--no-access-log",
            # error: --limit-concurrency logs a warning per refused request otherwise
            "--log-level",
            "error",
            *SERVERS[server],
            *VARIANTS[variant].uvicorn_args,
        ],
        env={**os.environ, "BENCH_VARIANT": VARIANTS[variant].app},
        start_new_session=True,
    )
    return Server(f"{server}/{variant}", server, variant, port, process)


def wait_up(server: Server) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name}: the server exited; run it by hand to see why")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name}: the server did not start in 30 s") from None
            time.sleep(0.05)
    # Warm up: a few requests through the whole stack, then clear the probe's records.
    records = loadgen.open_loop(server.url, 50, 0.4, start_in=0.05, timeout=CLIENT_TIMEOUT)
    statuses = {outcome for outcome, *_ in records}
    if statuses != {200}:
        raise RuntimeError(f"{server.name}: warm-up answered {statuses}")
    server.wait_idle()
    server.probe(records=True)


def stop(server: Server) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


def measure_capacity(server: Server, seconds: float) -> tuple[float, float]:
    """What one whole core serves: requests answered per second of the server's CPU time, with
    32 clients back to back (and the requests per second of wall time that run saw, lower when
    something else on the machine takes part of that core)."""
    cpu_before = server.cpu_seconds()
    records = loadgen.closed_loop(server.url, 32, seconds, timeout=CLIENT_TIMEOUT)
    summary = loadgen.summarize(records)
    server.wait_idle()
    cpu = server.cpu_seconds() - cpu_before
    server.probe(records=True)
    return summary.served / max(cpu, 1e-9), summary.served / summary.span


@dataclass
class Row:
    scenario: str
    server: str
    variant: str
    summary: loadgen.Summary
    server_cpu_s: float
    probe: dict[str, float]  # burst only: where the time went


def run_one(server: Server, scenario: str, settings: argparse.Namespace) -> Row:
    cpu_before = server.cpu_seconds()
    start = time.monotonic() + 0.2
    if scenario == "unloaded":
        rate, duration = settings.unloaded_rate, settings.unloaded_seconds
        records = loadgen.run(
            server.url,
            [start + i / rate for i in range(int(rate * duration))],
            timeout=CLIENT_TIMEOUT,
        )
    elif scenario == "overload":
        rate, duration = settings.rates[server.server], settings.overload_seconds
        records = loadgen.run(
            server.url,
            [start + i / rate for i in range(int(rate * duration))],
            timeout=CLIENT_TIMEOUT,
        )
    else:
        records = loadgen.run(server.url, [start] * settings.burst, timeout=CLIENT_TIMEOUT)
    server.wait_idle()
    cpu = server.cpu_seconds() - cpu_before
    probed = server.probe(records=True)
    summary = loadgen.summarize(records, SHED_STATUS)
    return Row(
        scenario,
        server.server,
        server.variant,
        summary,
        cpu,
        where_time_went(start, probed, summary) if scenario == "burst" else {},
    )


def where_time_went(
    start: float, probed: dict[str, object], summary: loadgen.Summary
) -> dict[str, float]:
    """From the probe's records of a burst: when requests reached the app and were answered,
    in ms after the burst started."""
    records = [r for r in probed["records"] if r[0] >= start - 0.05]  # type: ignore[attr-defined]
    reached = sorted(r[0] for r in records)
    served_ends = sorted(r[1] for r in records if 200 <= r[2] < 300)
    handler_ms = sorted((r[1] - r[0]) * 1000 for r in records if 200 <= r[2] < 300)
    nan = math.nan
    return {
        "reached_app": len(reached),
        "first_reached_ms": (reached[0] - start) * 1000 if reached else nan,
        "half_reached_ms": (reached[len(reached) // 2] - start) * 1000 if reached else nan,
        "last_reached_ms": (reached[-1] - start) * 1000 if reached else nan,
        "first_served_end_ms": (served_ends[0] - start) * 1000 if served_ends else nan,
        "in_app_p50_ms": loadgen.percentile(handler_ms, 50),
        "in_app_p99_ms": loadgen.percentile(handler_ms, 99),
    }


# ---- output -------------------------------------------------------------------------------


def print_table(scenario: str, rows: list[Row], settings: argparse.Namespace) -> None:
    what = {
        "unloaded": f"open loop at {settings.unloaded_rate:g} req/s for "
        f"{settings.unloaded_seconds:g} s",
        "overload": "open loop at "
        + ", ".join(
            f"{settings.rates[s]:,.0f} req/s ({SERVER_LABELS[s]})" for s in settings.server_names
        )
        + f" for {settings.overload_seconds:g} s: twice the bare app's capacity",
        "burst": f"{settings.burst:,} connections at once",
    }[scenario]
    print(f"\n### {scenario}: {what}\n")
    print(
        "| server | variant | served | shed | other | served p50 ms | p99 ms | max ms "
        "| shed p99 ms | shed with Retry-After | client errors | server CPU s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=_order):
        s = row.summary
        other = ", ".join(f"{n:,} x {code}" for code, n in sorted(s.other.items())) or "0"
        errors = ", ".join(f"{n:,} {kind}" for kind, n in sorted(s.errors.items())) or "0"
        print(
            f"| {SERVER_LABELS[row.server]} | {VARIANTS[row.variant].label} | {s.served:,} "
            f"| {s.shed:,} | {other} | {loadgen.ms(s.served_p50)} | {loadgen.ms(s.served_p99)} "
            f"| {loadgen.ms(s.served_max)} | {loadgen.ms(s.shed_p99)} "
            f"| {s.shed_with_retry_after:,} | {errors} | {row.server_cpu_s:.2f} |"
        )
    if scenario == "overload":
        print_headline(rows)
    lag = max(row.summary.lag_p99 for row in rows)
    print(f"\n(load generator launch lag, worst p99 of these runs: {loadgen.ms(lag)} ms)")
    if scenario == "burst":
        print_burst_breakdown(rows, settings)


def print_headline(rows: list[Row]) -> None:
    """tower-shot's form: "2x overload: p99 X ms with shedding vs Y ms without"."""
    print()
    for server in SERVERS:
        found = {row.variant: row.summary for row in rows if row.server == server}
        if "bare" not in found:
            continue
        for variant in ("overload-8", "overload-auto"):
            if variant in found:
                print(
                    f"2x overload, {SERVER_LABELS[server]}: served p99 "
                    f"{loadgen.ms(found[variant].served_p99)} ms with "
                    f"{VARIANTS[variant].label} vs {loadgen.ms(found['bare'].served_p99)} ms "
                    f"without ({found[variant].shed:,} shed, p99 "
                    f"{loadgen.ms(found[variant].shed_p99)} ms)"
                )


def print_burst_breakdown(rows: list[Row], settings: argparse.Namespace) -> None:
    print(
        "\nWhere the burst's time went, from the app's side (ms after the burst started): "
        "requests that reached the ASGI app (the rest were refused by uvicorn before it), "
        "when the first, the middle one and the last reached it, when the first served "
        "response ended, time inside the app per served request (p50/p99), and the "
        "server's CPU time over the burst against the CPU the handlers burn (1 ms each).\n"
    )
    print(
        "| server | variant | reached app | first | middle | last | first served done "
        "| in app p50 | p99 | server CPU ms | handlers' CPU ms | CPU per request outside "
        "handlers, µs |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=_order):
        p = row.probe
        handlers = row.summary.served * 1.0
        per_request = (row.server_cpu_s * 1000 - handlers) / max(1, settings.burst) * 1000
        print(
            f"| {SERVER_LABELS[row.server]} | {VARIANTS[row.variant].label} "
            f"| {p['reached_app']:,.0f} | {_f(p['first_reached_ms'])} "
            f"| {_f(p['half_reached_ms'])} | {_f(p['last_reached_ms'])} "
            f"| {_f(p['first_served_end_ms'])} | {_f(p['in_app_p50_ms'])} "
            f"| {_f(p['in_app_p99_ms'])} | {row.server_cpu_s * 1000:,.0f} | {handlers:,.0f} "
            f"| {per_request:,.0f} |"
        )


def _f(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _order(row: Row) -> tuple[int, int]:
    return (list(SERVERS).index(row.server), list(VARIANTS).index(row.variant))


def chart(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in SCENARIOS if any(r.scenario == s for r in rows)]
    figure, axes = plt.subplots(
        len(scenarios), 1, figsize=(12, 3.8 * len(scenarios)), squeeze=False
    )
    for axis, scenario in zip(axes[:, 0], scenarios, strict=True):
        chosen = sorted((r for r in rows if r.scenario == scenario), key=_order)
        labels = [
            f"{VARIANTS[r.variant].short}\n{SERVER_LABELS[r.server]}\n"
            f"served {r.summary.served:,}/{r.summary.requests:,}"
            for r in chosen
        ]
        series = {
            "served p50": [r.summary.served_p50 for r in chosen],
            "served p99": [r.summary.served_p99 for r in chosen],
            "served max": [r.summary.served_max for r in chosen],
            "shed p99": [r.summary.shed_p99 for r in chosen],
        }
        width = 0.2
        for index, (name, values) in enumerate(series.items()):
            positions = [i + (index - 1.5) * width for i in range(len(chosen))]
            heights = [v * 1000 if not math.isnan(v) else 0 for v in values]
            bars = axis.bar(positions, heights, width, label=name)
            for bar, value in zip(bars, values, strict=True):
                if not math.isnan(value):
                    axis.annotate(
                        f"{value * 1000:,.0f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
        for i, row in enumerate(chosen):
            if row.summary.served == 0:
                axis.annotate("none served", (i, 1), ha="center", va="bottom", fontsize=7)
        axis.set_yscale("log")
        highest = max(
            (v for values in series.values() for v in values if not math.isnan(v)), default=1.0
        )
        axis.set_ylim(1, highest * 1000 * 8)  # room for the legend above the bars
        axis.set_ylabel("latency, ms (log)")
        axis.set_xticks(range(len(chosen)), labels, fontsize=7)
        axis.set_title(scenario, fontsize=10)
        axis.grid(axis="y", which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncols=4, loc="upper left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---- main ---------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, h11 only")
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--servers", help="h11,httptools (default both; h11 with --quick)")
    parser.add_argument("--rate", type=float, help="overload arrivals per second (default: 2x)")
    parser.add_argument("--burst", type=int, default=1500)
    parser.add_argument("--chart", type=Path, help="write a PNG chart there (needs matplotlib)")
    parser.add_argument("--json", type=Path, help="write every run's summary there")
    settings = parser.parse_args(argv)
    settings.scenarios = _names(parser, "--scenario", settings.scenario, SCENARIOS)
    settings.variant_names = _names(parser, "--variants", settings.variants, VARIANTS)
    servers = settings.servers or ("h11" if settings.quick else ",".join(SERVERS))
    settings.server_names = _names(parser, "--servers", servers, SERVERS)
    if settings.burst < 1 or (settings.rate is not None and not settings.rate > 0):
        parser.error("--burst and --rate must be positive")
    settings.unloaded_rate = 100.0
    settings.unloaded_seconds = 1.0 if settings.quick else 3.0
    settings.overload_seconds = 2.0 if settings.quick else 4.0
    settings.capacity_seconds = 1.0 if settings.quick else 2.0
    return settings


def _names(parser: argparse.ArgumentParser, option: str, value: str, known: object) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]  # type: ignore[operator]
    if unknown or not names:
        parser.error(f"{option}: unknown {unknown or value!r}; known: {', '.join(known)}")  # type: ignore[arg-type]
    return names


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse(argv)
    import overload_app
    import uvicorn

    import rust_py_rate_limit

    variants = list(settings.variant_names)
    placement = pin_self_to_client_cpu()
    loadgen.raise_fd_limit()  # the servers inherit it: a burst is one socket per request
    print(f"rust_py_rate_limit {rust_py_rate_limit.__version__} from {rust_py_rate_limit.__file__}")
    print(f"OverloadMiddleware: {overload_app.OVERLOAD_MIDDLEWARE}")
    print(
        f"uvicorn {uvicorn.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {placement}; a new connection per request, client timeout "
        f"{CLIENT_TIMEOUT:g} s"
    )
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        servers = []
        for server_name in settings.server_names:
            for variant in variants:
                server = start(server_name, variant)
                stack.callback(stop, server)
                servers.append(server)
        for server in servers:
            wait_up(server)
        settings.rates = {}
        for server_name in settings.server_names:
            if settings.rate is not None:
                settings.rates[server_name] = settings.rate
                continue
            bare = next(
                (s for s in servers if s.server == server_name and s.variant == "bare"), None
            )
            if bare is None:
                bare = start(server_name, "bare")
                stack.callback(stop, bare)
                wait_up(bare)
            capacity, achieved = measure_capacity(bare, settings.capacity_seconds)
            settings.rates[server_name] = round(2 * capacity, -1)
            print(
                f"capacity of the bare app, {SERVER_LABELS[server_name]}: {capacity:,.0f} "
                f"requests per CPU second ({achieved:,.0f} req/s of wall time; 32 clients back "
                f"to back, {settings.capacity_seconds:g} s)",
                flush=True,
            )
        for index, scenario in enumerate(settings.scenarios):
            order = servers if index % 2 == 0 else servers[::-1]
            scenario_rows = []
            for server in order:
                row = run_one(server, scenario, settings)
                scenario_rows.append(row)
                s = row.summary
                print(
                    f"  {scenario} {server.name}: served {s.served:,} (p99 "
                    f"{loadgen.ms(s.served_p99)} ms), shed {s.shed:,}, errors "
                    f"{s.error_count:,}",
                    flush=True,
                )
            print_table(scenario, scenario_rows, settings)
            rows.extend(scenario_rows)
    title = (
        f"{settings.burst:,}-connection burst and 2x overload; OverloadMiddleware: "
        f"{overload_app.OVERLOAD_MIDDLEWARE}"
    )
    if settings.chart is not None:
        chart(rows, settings.chart, title)
        print(f"\nchart written to {settings.chart}")
    if settings.json is not None:
        settings.json.write_text(
            json.dumps(
                {
                    "overload_middleware": overload_app.OVERLOAD_MIDDLEWARE,
                    "rates": settings.rates,
                    "rows": [
                        {
                            **asdict(row),
                            "summary": {
                                k: v
                                for k, v in asdict(row.summary).items()
                                if k != "served_latencies"
                            },
                        }
                        for row in rows
                    ],
                },
                indent=1,
            )
        )
        print(f"summaries written to {settings.json}")


if __name__ == "__main__":
    main()
