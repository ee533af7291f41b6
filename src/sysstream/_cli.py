"""The ``sysstream`` command line. The only module that turns errors into exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, get_origin

import click
from rich.console import Console
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from . import __version__
from ._server import ServeError, run_server
from ._settings import Settings, SettingsError, load_settings
from ._watch import DEFAULT_URL, watch

__all__ = ["main"]


def _fail(message: str) -> None:
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
def settings_options(command: Callable[..., None]) -> Callable[..., None]:
    for name, field in reversed(Settings.model_fields.items()):
        many = get_origin(field.annotation) in (list, tuple)
        default = "none" if field.default in (None, [], ()) else field.default
        help_text = f"{field.description} [env SYSSTREAM_{name.upper()}; default {default}]"
        flag = "--" + name.replace("_", "-")
        command = click.option(flag, name, multiple=many, default=None, help=help_text)(command)
    return command


@cli.command()
@settings_options
def serve(**flags: Any) -> None:
    """Serve the stream, the API and the dashboard."""
    try:
        settings = load_settings(**flags)
    except SettingsError as exc:
        _fail(str(exc))
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    sysstream_logger = logging.getLogger("sysstream")
    sysstream_logger.addHandler(handler)
    sysstream_logger.setLevel(settings.log_level.upper() if settings.log_level != "trace" else 5)
    try:
        run_server(settings)
    except ServeError as exc:
        _fail(str(exc))


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
