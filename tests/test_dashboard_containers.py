"""The dashboard's Containers panel in a real headless Chromium, against a real server and
the tests' own dockerd."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunningServer
from .docker_daemon import IMAGE, DockerDaemon
from .test_dashboard import WAIT, browser, open_page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"
)


def run(docker: DockerDaemon, name: str, command: str, *options: str) -> str:
    return docker.output(
        "run", "-d", "--network", "none", "--name", name, *options, IMAGE, "sh", "-c", command
    )


async def row_names(page: Any) -> list[str]:
    return list(await page.page.locator("#container-rows .c-name").all_text_contents())


async def test_containers_panel_lists_sorts_and_follows_containers(
    server_factory: Callable[..., RunningServer],
    open_page: Callable[..., Any],  # noqa: F811
    docker: DockerDaemon,
) -> None:
    run(docker, "busy", "yes > /dev/null", "--cpus", "0.5", "--memory", "64m")
    run(docker, "idle", "sleep 3600")
    server = server_factory(interval=0.5, docker_host=docker.host)
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.page.wait_for_selector("#containers:not([hidden])", timeout=WAIT)
    rows = "#container-rows tr[data-id]"
    await page.wait_until(f"document.querySelectorAll('{rows}').length === 2")
    # By CPU, highest first: the burner leads once its first rate is in.
    await page.wait_until(
        "document.querySelector('#container-rows tr .c-name')?.textContent === 'busy'"
    )
    busy = page.page.locator(f"{rows}:has(.c-name:text-is('busy'))")
    assert await busy.locator(".c-image").text_content() == IMAGE
    assert await busy.locator(".c-state").text_content() == "running"
    await page.wait_until(
        "Number(document.querySelector('#container-rows tr .spark')?.dataset.points) >= 3"
    )
    cpu = await busy.locator("td.num .c-value").first.text_content()
    assert cpu is not None and "of limit" in cpu
    memory = await busy.locator("td.num .c-value").nth(1).text_content()
    assert memory is not None and memory.endswith("/ 64.0 MiB")
    assert await page.page.text_content("#containers .card-head .sub") == "2 running"
    assert await page.page.locator("#containers h2").text_content() == "Containers"

    # Sort by name: A to Z, then Z to A.
    await page.page.click("#containers th[data-key=name] button")
    assert await row_names(page) == ["busy", "idle"]
    assert await page.page.get_attribute("#containers th[data-key=name]", "aria-sort") == (
        "ascending"
    )
    await page.page.click("#containers th[data-key=name] button")
    assert await row_names(page) == ["idle", "busy"]

    docker.run("stop", "-t", "0", "idle")
    await page.wait_until(f"document.querySelectorAll('{rows}').length === 1")
    assert await row_names(page) == ["busy"]
    assert page.errors == []


async def test_panel_hidden_without_daemon_or_containers(
    server_factory: Callable[..., RunningServer],
    open_page: Callable[..., Any],  # noqa: F811
    docker: DockerDaemon,
    tmp_path: Path,
) -> None:
    server = server_factory(interval=0.5, docker_host=f"unix://{tmp_path}/docker.sock")
    await server.wait_until(
        lambda: "containers" in (server.hub.latest.errors if server.hub.latest else {})
    )
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.wait_until("document.getElementById('containers')?.dataset.reason")
    assert await page.page.is_hidden("#containers")
    reason = await page.page.get_attribute("#containers", "data-reason")
    assert reason is not None and "no Docker daemon" in reason
    # The rest of the page works, and says nothing of a daemon this host does not have.
    assert await page.page.locator("#card-cpu canvas").count() == 1
    notice = await page.page.text_content("#notice")
    assert await page.page.is_hidden("#notice") or "Docker" not in (notice or ""), notice
    assert page.errors == []
