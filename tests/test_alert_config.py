"""Rule files from the command line: `sysstream alerts check`, errors at start, and reload
on SIGHUP without losing state (real `sysstream serve` processes)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_cli import run, serve

ALWAYS = """
builtin = false
[rules.always]
metric = "cpu"
op = ">="
warning = 0
repeat = 0
"""


def test_check_accepts_a_valid_file_and_names_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[rules.swap]\nenabled = false\n[[notify]]\nurl = "json://localhost/x"\n')
    result = run("alerts", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{path}: ok: 6 rules (cpu, memory, filesystem, load, temperature, host_offline),"
        " 1 destinations\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules.x]\nmetric = 'gpu'\nwarning = 1\n", "rule 'x', field 'metric': unknown metric"),
        ("[rules.cpu]\nwindow = 'forever'\n", "rule 'cpu', field 'window': expected a duration"),
        ("[rules.cpu\n", "not valid TOML"),
        ("[[notify]]\nurl = 'nosuch://x'\n", "field 'url': Apprise does not understand nosuch://"),
        ("[[notify]]\nwebhook = 'ftp://x'\n", "field 'webhook': expected an http:// or https://"),
        ("[[notify]]\nwebhook = 'http://x'\nretries = 99\n", "field 'retries': expected a whole"),
    ],
)
def test_check_refuses_a_bad_file_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    checked = run("alerts", "check", str(path))
    assert checked.returncode == 2
    assert message in checked.stderr
    assert checked.stderr.count("\n") == 1 and "Traceback" not in checked.stderr


def test_serve_refuses_a_bad_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[rules.cpu]\nwarning = 'hot'\n")
    served = run("serve", "--port", "0", env={"SYSSTREAM_ALERTS": str(path)})
    assert served.returncode == 2
    assert served.stderr == (
        f"sysstream: invalid --alerts / SYSSTREAM_ALERTS: {path}: rule 'cpu', field 'warning':"
        f" expected a number or a sibling value of 'cpu', got 'hot'\n"  # the path once
    )


def test_check_of_a_missing_file() -> None:
    result = run("alerts", "check", "/nonexistent/rules.toml")
    assert result.returncode == 2
    assert result.stderr == (
        "sysstream: cannot read /nonexistent/rules.toml: No such file or directory\n"
    )


async def alerts_of(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        body: dict[str, Any] = (await client.get(f"http://127.0.0.1:{port}/api/alerts")).json()
        return body


async def test_sighup_reloads_rules_and_keeps_state(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(ALWAYS)
    async with serve("--interval", "0.2", "--alerts", str(path)) as (process, port):
        async with asyncio.timeout(15):
            while not (body := await alerts_of(port))["active"]:
                await asyncio.sleep(0.05)
        [before] = body["active"]
        path.write_text(ALWAYS + '[rules.memory_too]\nmetric = "memory"\nop = ">="\nwarning = 0\n')
        process.send_signal(signal.SIGHUP)
        assert process.stderr is not None
        async with asyncio.timeout(15):
            while b"alerts: reloaded 2 rule(s)" not in await process.stderr.readline():
                pass
            while len((body := await alerts_of(port))["active"]) < 2:
                await asyncio.sleep(0.05)
        assert [r["name"] for r in body["rules"]] == ["always", "memory_too"]
        [kept] = [a for a in body["active"] if a["rule"] == "always"]
        assert kept["since"] == before["since"]  # not fired again

        path.write_text("[rules.broken]\nmetric = 'nope'\n")
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(15):
            while b"reload refused" not in (line := await process.stderr.readline()):
                pass
        assert b"rule 'broken', field 'metric': unknown metric 'nope'" in line
        assert [r["name"] for r in (await alerts_of(port))["rules"]] == ["always", "memory_too"]
