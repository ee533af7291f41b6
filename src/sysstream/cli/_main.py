"""The ``sysstream`` command line. The only module that turns errors into exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, get_origin

import click
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from rich.console import Console
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from .._settings import ModelT, Settings, SettingsError, validated
from .._version import __version__
from ..fleet import AgentSettings, run_agent
from ..web import ServeError, run_server
from ._watch import DEFAULT_URL, watch

__all__ = ["main"]


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: bad input never shows a traceback."""
    click.echo(f"sysstream: {message}", err=True)
    raise SystemExit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sysstream")
def cli() -> None:
    """Live system metrics, streamed over WebSocket."""


# Flags are generated from the settings model, so each setting's name, description and
# default are written once; values are validated by the model, not click, so a bad flag
# and a bad SYSSTREAM_* variable get the same one-line error.
def model_options(
    model: type[BaseSettings],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for name, field in reversed(model.model_fields.items()):
            command = _option(name, field)(command)
        return command

    return decorate


def _option(name: str, field: FieldInfo) -> Callable[[Callable[..., None]], Callable[..., None]]:
    many = get_origin(field.annotation) in (list, tuple)
    default = "required" if field.is_required() else field.get_default(call_default_factory=True)
    default = "none" if default in (None, [], ()) else default
    help_text = f"{field.description} [env SYSSTREAM_{name.upper()}; default {default}]"
    flags = ["--" + name.replace("_", "-")]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(alias := extra.get("flag_alias"), str):
        flags.append(alias)  # a short name the docs use (`serve --redis URL`)
    # A bool that defaults to off is a bare switch (`--no-store`); others take a value.
    if field.annotation is bool and field.default is False:
        return click.option(*flags, name, is_flag=True, default=None, help=help_text)
    return click.option(*flags, name, multiple=many, default=None, help=help_text)


settings_options = model_options(Settings)


def _settings_or_fail(model: type[ModelT], flags: dict[str, Any]) -> ModelT:
    """The command's validated settings, with logging set to their level; a bad value is
    one line on stderr and exit status 2."""
    try:
        settings = validated(model, **flags)
    except SettingsError as exc:
        _fail(str(exc))
    _log_to_stderr(getattr(settings, "log_level", "info"))
    return settings


def _log_to_stderr(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    sysstream_logger = logging.getLogger("sysstream")
    sysstream_logger.addHandler(handler)
    sysstream_logger.setLevel(level.upper() if level != "trace" else 5)


@cli.command()
@settings_options
def serve(**flags: Any) -> None:
    """Serve the stream, the API and the dashboard."""
    settings = _settings_or_fail(Settings, flags)
    try:
        run_server(settings)
    except ServeError as exc:
        _fail(str(exc))


@cli.command()
@model_options(AgentSettings)
def agent(**flags: Any) -> None:
    """Sample this host and publish each tick to Redis, for `serve --redis` hubs."""
    settings = _settings_or_fail(AgentSettings, flags)
    asyncio.run(_until_signalled(run_agent(settings)))


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGINT/SIGTERM, then cancel it: a stop signal is a clean exit."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@cli.command(name="watch")
@click.argument("url", default=DEFAULT_URL)
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many messages.")
def watch_command(url: str, count: int | None) -> None:
    """Show the live stream at URL in the terminal; reconnects when the server goes away."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        _fail(f"expected a ws:// or wss:// URL, got {url!r} ({exc})")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(url, count=count, console=Console()))


def main() -> None:
    cli(prog_name="sysstream")
