"""Where sysstream's fan-out CPU goes: py-spy over a server holding N clients.

Usage (from the repository root; py-spy must be installed, ``pip install py-spy``)::

    .venv/bin/python benchmarks/profile.py                 # 10,000 clients, 20 s
    .venv/bin/python benchmarks/profile.py --clients 5000 --seconds 30 --top 25

Owns: starting sysstream and the lean clients exactly as :mod:`run` does, sampling the
server with ``py-spy record --format raw`` over a window after the warm-up, and summing
the folded stacks into a table of busy samples by leaf function and by the sysstream
frame that led there. The raw stacks are kept in ``benchmarks/results/`` for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fleet import Fleet, source_addresses
from run import RESULTS, raise_open_files
from servers import HERE, PYTHON, SERVERS, RunningServer, ServerSpec

__all__ = ["gc_summary", "main", "summarise"]

IDLE_LEAVES = ("select (selectors.py", "run_once (uvloop", "epoll_wait")


def summarise(folded: str, top: int) -> str:
    """Markdown tables of busy samples by leaf frame and by innermost sysstream frame."""
    leaves: collections.Counter[str] = collections.Counter()
    owners: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if any(marker in leaf for marker in IDLE_LEAVES):
            continue
        count = int(count_text)
        busy += count
        leaves[_short(leaf)] += count
        own = next((f for f in reversed(frames) if "sysstream" in f), "(outside sysstream)")
        owners[_short(own)] += count
    lines = [f"busy samples: {busy}", ""]
    for title, counter in (("leaf frame", leaves), ("innermost sysstream frame", owners)):
        lines += [f"| {title} | share of busy |", "|---|---|"]
        for name, count in counter.most_common(top):
            lines.append(f"| `{name}` | {count / max(1, busy):.1%} |")
        lines.append("")
    return "\n".join(lines)


def gc_summary(log: str, window: tuple[float, float]) -> str:
    """Older-generation collections that fell inside the profiled window."""
    lines = []
    for line in log.splitlines():
        if not line.startswith("gc gen="):
            continue
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        if window[0] <= float(fields["at"]) <= window[1]:
            lines.append(f"| {fields['gen']} | {fields['ms']} | {fields['collected']} |")
    head = ["", "| GC generation (in the window) | ms | collected |", "|---|---|---|"]
    return "\n".join(head + (lines or ["| none | | |"])) + "\n"


def _short(frame: str) -> str:
    """``deliver (sysstream/stream/_sinks.py:88)`` → ``deliver (stream/_sinks.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--server", choices=("sysstream", "floor"), default="sysstream")
    parser.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    parser.add_argument("--sysstream-args", default="", help="extra `sysstream serve` flags")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raise_open_files()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"profile-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    raw = logs / "sysstream.folded"
    plain = SERVERS["sysstream"]
    # The same command, run through gcwatch so the log holds every older-generation GC.
    watched = ServerSpec(
        "sysstream",
        lambda port: [PYTHON, str(HERE / "gcwatch.py"), *plain.command(port)[1:]],
        has_healthz=True,
    )
    extra = shlex.split(args.sysstream_args)
    spec = watched if args.server == "sysstream" else SERVERS["floor"]
    with RunningServer(spec, logs / "sysstream.log", extra) as server:
        server.wait_ready()
        with Fleet(
            server.port,
            args.clients,
            deflate=True,
            sources=source_addresses(),
            log=logs / "clients.log",
        ) as fleet:
            connected, seconds = fleet.connect()
            print(f"{connected:,} connected in {seconds:.1f} s; profiling …", flush=True)
            time.sleep(args.warmup)
            window = time.time(), time.time() + args.seconds
            record = ["record", "--pid", str(server.pid), "--duration", str(args.seconds)]
            record += ["--rate", str(args.rate), "--format", "raw", "--output", str(raw)]
            subprocess.run(
                # --native needs to stop the process at each sample (it perturbs more)
                [py_spy, *record, *(["--native"] if args.native else ["--nonblocking"])],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    report = summarise(raw.read_text(encoding="utf-8"), args.top)
    report += gc_summary((logs / "sysstream.log").read_text(encoding="utf-8"), window)
    (logs / "summary.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"raw stacks: {raw}")


if __name__ == "__main__":
    main()
