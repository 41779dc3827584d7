"""Resident memory per tracked key: RSS growth for 1,000,000 keys, per algorithm.

Each measurement runs in a fresh subprocess: it builds the key list first, reads the current
RSS (``/proc/self/statm``), calls ``allow()`` once for every key, reads the RSS again and
reports the growth divided by the number of keys. The main rows use keys like
``"user:0000001"`` and one rate (target: <= 64 bytes per key); extra rows, labelled, use a
multi-rate limiter (``"10/second; 1000/hour"``) and 40-byte keys.

``--compare-wheel PATH_OR_SPEC`` installs another build (a wheel path, a directory, or a
requirement such as ``rust-py-rate-limit==0.3.1``) into a virtualenv under /tmp and runs the
same subprocess there, for the algorithms it has.

Run it from outside the checkout against an installed build (see benches/README.md)::

    python benches/memory_bench.py [--keys N] [--json] [--compare-wheel PATH_OR_SPEC]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import venv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
KEYS = 1_000_000
TARGET_BYTES_PER_KEY = 64
MULTI_RATE = "10/second; 1000/hour"
LIMIT = 10  # per hour: every key is used once, so every call is admitted
HOUR = 3600
LEGACY_ALGORITHMS = ["fixed", "sliding"]  # builds without `ALGORITHMS` (0.3.x)


@dataclass(frozen=True)
class Case:
    algorithm: str
    variant: str  # "main", "multi-rate" or "long keys"
    keys: int


@dataclass
class Result:
    build: str
    case: Case
    rss_before: int
    rss_after: int
    tracked: int
    rss_source: str

    @property
    def bytes_per_key(self) -> float:
        return (self.rss_after - self.rss_before) / self.case.keys


# --- the child: one measurement in a fresh interpreter --------------------------------------


def import_library() -> ModuleType:
    """Imports the installed package, never the checkout's (which has no compiled ``_core``)."""
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != CHECKOUT]
    return importlib.import_module("rust_py_rate_limit")


def current_rss() -> tuple[int, str]:
    """Current resident set size in bytes, and where it came from."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE"), "/proc/self/statm"
    except OSError:
        # No /proc (macOS): max RSS only, which is current RSS while memory only grows.
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024
        return maxrss * scale, "ru_maxrss"


def make_keys(variant: str, count: int) -> list[str]:
    if variant == "long keys":
        return [f"session:{i:032d}" for i in range(count)]  # 8 + 32 = 40 bytes
    return [f"user:{i:07d}" for i in range(count)]


def make_limiter(lib: ModuleType, case: Case) -> Any:
    if case.variant == "multi-rate":
        return lib.RateLimiter.from_rate(MULTI_RATE, algorithm=case.algorithm)
    return lib.RateLimiter(limit=LIMIT, window_seconds=HOUR, algorithm=case.algorithm)


def run_child(case: Case) -> dict[str, Any]:
    lib = import_library()
    keys = make_keys(case.variant, case.keys)
    limiter = make_limiter(lib, case)
    limiter.allow("warm-up")  # any lazy set-up happens before the first reading
    gc.collect()
    before, source = current_rss()
    for k in keys:
        limiter.allow(k)
    after, _ = current_rss()
    tracked = limiter.stats()["active_keys"] - 1  # minus the warm-up key
    return {"rss_before": before, "rss_after": after, "tracked": tracked, "rss_source": source}


def library_info() -> dict[str, Any]:
    lib = import_library()
    return {
        "file": lib.__file__,
        "version": lib.__version__,
        "algorithms": list(getattr(lib, "ALGORITHMS", LEGACY_ALGORITHMS)),
        "from_rate": hasattr(lib.RateLimiter, "from_rate"),
    }


# --- the parent: one subprocess per case ----------------------------------------------------


def call_child(python: str, *args: str) -> dict[str, Any]:
    """Runs this script in `python` with `args`; returns the JSON it printed."""
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {' '.join(args)} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def cases_for(info: dict[str, Any], keys: int) -> list[Case]:
    algorithms: list[str] = info["algorithms"]
    variants = ["main", "long keys"]
    if info["from_rate"]:
        variants.insert(1, "multi-rate")
    return [Case(a, v, keys) for v in variants for a in algorithms]


def measure_build(label: str, python: str, keys: int) -> tuple[dict[str, Any], list[Result]]:
    info = call_child(python, "--child-info")
    info["label"] = build = f"{label} {info['version']}"
    results = []
    for case in cases_for(info, keys):
        out = call_child(python, "--child", json.dumps(asdict(case)))
        results.append(Result(build=build, case=case, **out))
        print(f"  {build} {case.variant} {case.algorithm}: done", file=sys.stderr)
    return info, results


def compare_venv(spec: str) -> str:
    """A virtualenv under /tmp with `spec` installed (reused when it exists); its python."""
    target = str(Path(spec).resolve()) if Path(spec).exists() else spec
    digest = hashlib.sha256(target.encode()).hexdigest()[:12]
    env_dir = Path("/tmp") / f"rprl-memory-compare-{digest}"
    python = env_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {env_dir} and installing {target}", file=sys.stderr)
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", target], check=True)
    return str(python)


# --- reporting ------------------------------------------------------------------------------

VARIANT_LABELS = {
    "main": '"user:0000001" keys, 1 rate',
    "multi-rate": f'extra: multi-rate "{MULTI_RATE}"',
    "long keys": "extra: 40-byte keys, 1 rate",
}


def verdict(r: Result) -> str:
    if r.case.variant != "main":
        return "(no target)"
    return "yes" if r.bytes_per_key <= TARGET_BYTES_PER_KEY else "**no**"


def table(results: Sequence[Result]) -> list[str]:
    mib = 1024 * 1024
    lines = [
        "| build | keys | algorithm | RSS before MiB | RSS after MiB | tracked "
        "| bytes/key | within target |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.build} | {VARIANT_LABELS[r.case.variant]} | {r.case.algorithm} "
            f"| {r.rss_before / mib:.1f} | {r.rss_after / mib:.1f} | {r.tracked:,} "
            f"| {r.bytes_per_key:.1f} | {verdict(r)} |"
        )
    return lines


def report(infos: Sequence[dict[str, Any]], results: Sequence[Result], keys: int) -> str:
    lines = ["# rust_py_rate_limit: resident memory per key", ""]
    for info in infos:
        lines.append(f"- {info['label']}: {info['file']}")
    lines += [
        f"- {keys:,} keys, each passed to `allow()` once; growth of current RSS "
        f"({results[0].rss_source}) divided by the key count; each row a fresh process",
        f"- target: <= {TARGET_BYTES_PER_KEY} bytes per key for the main rows "
        '("user:0000001" keys, one rate); "extra" rows are for information',
        "",
        *table(results),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=KEYS, help=f"keys (default {KEYS:,})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--compare-wheel",
        metavar="PATH_OR_SPEC",
        help="also measure this build, installed into a virtualenv under /tmp",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-info", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_info:
        print(json.dumps(library_info()))
        return
    if args.child:
        print(json.dumps(run_child(Case(**json.loads(args.child)))))
        return
    builds = [("this", sys.executable)]
    if args.compare_wheel:
        builds.append(("compare", compare_venv(args.compare_wheel)))
    infos, results = [], []
    for label, python in builds:
        info, rows = measure_build(label, python, args.keys)
        infos.append(info)
        results += rows
    if args.json:
        doc = [{**asdict(r), "bytes_per_key": r.bytes_per_key} for r in results]
        print(json.dumps({"target_bytes_per_key": TARGET_BYTES_PER_KEY, "rows": doc}, indent=2))
    else:
        print(report(infos, results, args.keys))


if __name__ == "__main__":
    main()
