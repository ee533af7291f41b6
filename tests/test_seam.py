"""The uvicorn and websockets internals sysstream's protocol relies on (named in
sysstream.stream._seam) are still there, with the types it expects, in the installed
releases; each failure names what moved."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.websockets import websockets_sansio_impl
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

from sysstream.stream._protocol import Flag, Inbox, WebSocketProtocol
from sysstream.stream._seam import (
    UVICORN_ATTRIBUTES,
    UVICORN_METHODS,
    UVICORN_QUEUE_METHODS,
    UVICORN_WRITABLE_METHODS,
    WEBSOCKETS_ATTRIBUTES,
)

ROOT = Path(__file__).resolve().parent.parent
RELEASE = f"uvicorn {uvicorn.__version__}"


async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.fixture
async def stock() -> WebSocketsSansIOProtocol:
    config = Config(app, ws="websockets-sansio", lifespan="off")
    config.load()
    return WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())


@pytest.mark.parametrize("name", sorted(UVICORN_ATTRIBUTES))
async def test_uvicorn_attribute(stock: WebSocketsSansIOProtocol, name: str) -> None:
    assert hasattr(stock, name), f"{RELEASE} removed WebSocketsSansIOProtocol.{name}"
    expected = UVICORN_ATTRIBUTES[name]
    actual = type(getattr(stock, name)).__name__
    assert not expected or actual in expected, (
        f"{RELEASE}: WebSocketsSansIOProtocol.{name} is a {actual}, expected one of {expected}"
    )


@pytest.mark.parametrize("name", sorted(UVICORN_METHODS))
def test_uvicorn_method(name: str) -> None:
    method = getattr(WebSocketsSansIOProtocol, name, None)
    assert callable(method), f"{RELEASE} removed WebSocketsSansIOProtocol.{name}()"
    parameters = tuple(inspect.signature(method).parameters)[1:]
    assert parameters == UVICORN_METHODS[name], (
        f"{RELEASE}: WebSocketsSansIOProtocol.{name}{parameters}, "
        f"expected parameters {UVICORN_METHODS[name]}"
    )


@pytest.mark.parametrize(
    ("attribute", "expected", "stand_in"),
    [("queue", UVICORN_QUEUE_METHODS, Inbox), ("writable", UVICORN_WRITABLE_METHODS, Flag)],
)
def test_uvicorn_calls_only_what_the_stand_ins_implement(
    attribute: str, expected: frozenset[str], stand_in: type
) -> None:
    source = inspect.getsource(websockets_sansio_impl)
    called = set(re.findall(rf"self\.{attribute}\.(\w+)\(", source))
    assert called <= expected, f"{RELEASE} calls self.{attribute}.{sorted(called - expected)}"
    assert all(callable(getattr(stand_in, name, None)) for name in expected), stand_in


def test_websockets_attribute() -> None:
    for path, expected in WEBSOCKETS_ATTRIBUTES.items():
        value: Any = ServerProtocol()
        for part in path.split("."):
            assert hasattr(value, part), f"websockets removed ServerProtocol.{path}"
            value = getattr(value, part)
        assert type(value).__name__ in expected, f"ServerProtocol.{path} is a {type(value)}"


def body(function: Any) -> str:
    """A method's code without comments, docstrings or formatting."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return ast.unparse(tree.body[0].body)


def test_run_asgi_is_uvicorns_but_for_the_detached_connection() -> None:
    """uvicorn offers no hook for "leave the connection open when the app returns", so
    WebSocketProtocol.run_asgi repeats uvicorn's; this fails when uvicorn's changes."""
    ours = body(WebSocketProtocol.run_asgi).replace(
        "self.close_timer is None and self.handler is None", "self.close_timer is None"
    )
    assert ours == body(WebSocketsSansIOProtocol.run_asgi), (
        f"{RELEASE} changed WebSocketsSansIOProtocol.run_asgi: bring "
        "sysstream.stream._protocol.WebSocketProtocol.run_asgi in step"
    )


def test_the_conformance_run_covers_every_uvicorn_minor_the_pin_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = next(d for d in project["dependencies"] if d.startswith("uvicorn"))
    low, high = re.fullmatch(r"uvicorn\[standard\]>=0\.(\d+),<0\.(\d+)", pin).groups()
    source = (ROOT / "scripts" / "conformance.py").read_text()
    releases = re.search(r"RELEASES = \(([^)]*)\)", source).group(1)
    minors = {int(v.split(".")[1]) for v in re.findall(r'"(\d+\.\d+\.\d+)"', releases)}
    assert minors == set(range(int(low), int(high))), (pin, releases)
