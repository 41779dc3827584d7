"""Where the server's CPU goes in a burst: py-spy samples of one uvicorn server, by category.

Starts one server of benches/overload.py (``--server``, ``--variant``), records it with
``py-spy record --format raw`` while the load generator sends ``--bursts`` bursts of
``--burst`` connections at once, and sorts the samples (idle ones left out) by what the stack
was doing: accepting and setting up connections, reading and parsing requests, the
middlewares' own code, Starlette, the handler's CPU, serializing and writing responses,
closing connections.

With h11/asyncio every step is Python code, so py-spy's Python stacks see them all. With
httptools/uvloop the loop's own work is C; ``--native`` makes py-spy unwind C frames too (it
then pauses the server for each sample, so the burst runs slower while profiled: read the
shares, not the latencies).

    pip install py-spy            # into the same virtualenv
    cd /tmp && python /path/to/checkout/benches/burst_profile.py --server h11 --variant overload-8
    cd /tmp && python /path/to/checkout/benches/burst_profile.py --server httptools --native

py-spy reads another process's memory: it needs root or ``CAP_SYS_PTRACE`` (or
``kernel.yama.ptrace_scope = 0``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import overload

#: (category, test on the stack's frame names joined by ";" and its leaf), first match wins.
RULES = (
    ("idle", lambda stack, leaf: leaf in ("epoll_pwait", "EpollSelector.select", "epoll_wait")),
    ("handler's CPU (burn 1 ms)", lambda stack, leaf: "burn" in stack),
    (
        "responses: serialize and write (the server's send)",
        lambda stack, leaf: "RequestResponseCycle.send" in stack,
    ),
    (
        "app: Starlette routing and endpoint",
        lambda stack, leaf: "run_asgi" in stack and "Starlette.__call__" in stack,
    ),
    ("app: middlewares' own code (probe, shedding)", lambda stack, leaf: "run_asgi" in stack),
    (
        "accept and set up connections",
        lambda stack, leaf: any(
            name in stack
            for name in (
                "_accept_connection",
                "on_listen",
                "uv__server_io",
                "connection_made",
                "create_protocol",
                "Protocol.__init__",
            )
        ),
    ),
    (
        "read and parse requests, start their tasks",
        lambda stack, leaf: any(
            name in stack
            for name in (
                "_read_ready",
                "uv__read",
                "data_received",
                "on_headers_complete",
                "on_url",
                "_start_asgi_task",
            )
        ),
    ),
    (
        "close connections",
        lambda stack, leaf: any(
            name in stack
            for name in ("connection_lost", "_real_close", "close_handle", "closing_handles")
        ),
    ),
)


def categorize(raw: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        names = [re.sub(r" \(.*", "", frame) for frame in stack.split(";")]
        joined, leaf = ";".join(names), names[-1]
        category = next(
            (name for name, test in RULES if test(joined, leaf)), "other event-loop work"
        )
        counts[category] += int(count)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="h11", choices=list(overload.SERVERS))
    parser.add_argument("--variant", default="overload-8", choices=list(overload.VARIANTS))
    parser.add_argument("--burst", type=int, default=1500)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    overload.pin_self_to_client_cpu()
    loadgen.raise_fd_limit()
    server = overload.start(args.server, args.variant)
    try:
        overload.wait_up(server)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "samples.txt"
            command = [py_spy, "record", "--pid", str(server.process.pid), "--rate"]
            command += [str(args.rate), "--format", "raw", "--output", str(raw)]
            command += ["--native"] if args.native else []
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # py-spy attaches
            for _ in range(args.bursts):
                summary = loadgen.summarize(loadgen.burst(server.url, args.burst))
                server.wait_idle()
                server.probe(records=True)
                print(
                    f"burst of {args.burst:,}: served {summary.served:,} (p99 "
                    f"{loadgen.ms(summary.served_p99)} ms), shed {summary.shed:,}, "
                    f"client errors {summary.error_count:,}",
                    flush=True,
                )
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
            _, errors = spy.communicate(timeout=60)
            if not raw.exists():
                sys.exit(f"py-spy wrote nothing:\n{errors.decode()}")
            counts = categorize(raw)
    finally:
        overload.stop(server)
    busy = sum(n for category, n in counts.items() if category != "idle")
    print(
        f"\n{overload.SERVER_LABELS[args.server]}, {overload.VARIANTS[args.variant].label}: "
        f"{busy:,} busy samples at {args.rate}/s (idle ones left out)"
        + (", native frames" if args.native else "")
        + "\n"
    )
    print("| where the server's CPU went | share of busy samples |")
    print("|---|---:|")
    for category, n in counts.most_common():
        if category != "idle":
            print(f"| {category} | {n / max(busy, 1) * 100:.1f}% |")


if __name__ == "__main__":
    main()
