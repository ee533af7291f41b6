"""Fan-out benchmark: sysstream against the naive design and the floor, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py           # full matrix (~15 min); updates the docs
    .venv/bin/python benchmarks/run.py --quick   # smoke run: 100 and 1,000 clients

Owns: the matrix (which server, how many clients, deflate offered or not), the order of
runs, and where results go: ``benchmarks/results/`` (JSON, markdown, logs) and, for a
full run, the generated section of ``docs/benchmarks.md`` plus ``docs/benchmarks.svg``.
Every server and client runs on 127.0.0.1 and every run ends by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chart import render_chart
from fleet import source_addresses
from measure import measure_idle, measure_run
from report import chart_series, median_rows, render_markdown
from servers import SERVERS as SPECS

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.svg"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SERVERS = ("floor", "sysstream", "naive")


@dataclass(frozen=True, slots=True)
class Case:
    server: str
    clients: int
    deflate: bool = True


def matrix(args: argparse.Namespace) -> list[Case]:
    """One round: each N for every server in turn, then the connect test, then no deflate.

    The servers run back to back within a round, so a round's ratios compare runs made
    minutes apart under the same conditions; ``--runs`` repeats whole rounds.
    """
    servers = [name for name in SERVERS if name in args.servers]
    cases = [Case(server, n) for n in args.clients for server in servers]
    cases += [Case(server, args.connect_test) for server in servers if server != "naive"]
    cases += [Case(server, args.no_deflate, deflate=False) for server in servers]
    return [case for case in cases if case.clients > 0]


def raise_open_files() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children (servers, clients) inherit it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line for line in info if line.startswith("model name")).split(":")[1]
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores ({model.strip()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; server and clients share the cores"
    )


def write_docs(markdown: str, svg: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{markdown}{END}{tail}", encoding="utf-8")
    CHART.write_text(svg, encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run; docs untouched")
    parser.add_argument("--clients", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS))
    parser.add_argument("--connect-test", type=int, help="extra N for the connect test")
    parser.add_argument("--no-deflate", type=int, help="N of the runs that offer no deflate")
    parser.add_argument("--warmup", type=float, help="seconds before measuring")
    parser.add_argument("--window", type=int, help="measured seconds (whole ticks)")
    parser.add_argument("--idle", type=float, help="seconds of the idle measurement (0: skip)")
    parser.add_argument("--runs", type=int, default=1, help="rounds of the whole matrix")
    parser.add_argument(
        "--sysstream-args", default="", help="extra `sysstream serve` flags, one string"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "clients": [100, 1000] if quick else [100, 1000, 5000, 10_000],
        "connect_test": 0 if quick else 15_000,
        "no_deflate": 1000 if quick else 10_000,
        "warmup": 2.0 if quick else 5.0,
        "window": 5 if quick else 20,
        "idle": 5.0 if quick else 30.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.runs < 1:
        parser.error(f"--runs: expected at least 1, got {args.runs}")
    args.write_docs = not (quick or args.no_docs)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_open_files()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    sources = source_addresses()
    extra = shlex.split(args.sysstream_args)
    sysstream_command = ["sysstream", *SPECS["sysstream"].command(0)[1:], *extra]
    sysstream_command[sysstream_command.index("--port") + 1] = "<free port>"
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "command": shlex.join([".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]]),
        "warmup": args.warmup,
        "window": args.window,
        "sysstream_command": shlex.join(sysstream_command),
        "rows": [],
        "idle": None,
    }
    if args.idle > 0 and "sysstream" in args.servers:
        print(f"idle sysstream, {args.idle:g} s …", flush=True)
        results["idle"] = measure_idle(args.idle, logs, extra)
        print(f"  {results['idle']}", flush=True)
    for run in range(args.runs):
        for case in matrix(args):
            offer = "deflate offered" if case.deflate else "no deflate"
            print(f"[{run + 1}/{args.runs}] {case.server}, {case.clients:,}, {offer} …", flush=True)
            row = measure_run(
                case.server,
                case.clients,
                deflate=case.deflate,
                warmup=args.warmup,
                window=args.window,
                sources=sources,
                logs=logs,
                extra=extra if case.server == "sysstream" else [],
            )
            results["rows"].append({"run": run, **row.as_dict()})
            print(f"  {json.dumps(row.as_dict())}", flush=True)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    markdown = render_markdown(results)
    (RESULTS / "latest.md").write_text(markdown, encoding="utf-8")
    cpu, rss = chart_series(median_rows(results["rows"]))
    svg = render_chart(cpu, rss, [name for name in SERVERS if name in cpu])
    (RESULTS / "latest.svg").write_text(svg, encoding="utf-8")
    if args.write_docs:
        write_docs(markdown, svg)
    print(markdown)


if __name__ == "__main__":
    main()
