"""The ``sysstream`` command line. The only module that turns errors into exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from types import UnionType
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

import click
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from rich.console import Console
from websockets.exceptions import WebSocketException

from .._settings import Directory, File, ModelT, Settings, SettingsError, validated
from .._version import __version__
from ..alerts import load_rule_file
from ..fleet import AgentSettings, run_agent
from ..sansio import EndpointError, RuleError, parse_endpoint
from ..web import ServeError, run_server
from ._switches import SwitchCommand
from ._watch import Refused, describe_failure, print_lines
from ._watch import once as watch_once

__all__ = ["main"]


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: bad input never shows a traceback."""
    click.echo(f"sysstream: {message}", err=True)
    raise SystemExit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="sysstream")
@click.pass_context
def cli(context: click.Context) -> None:
    """Live system metrics, streamed over WebSocket."""
    if context.invoked_subcommand is None:
        click.echo(context.get_help())


# Flags are generated from the settings model, so each setting's name, type, description and
# default are written once. click converts a flag to its type (`--port` an integer, `--log-level`
# one of its choices, `--proxy-headers/--no-proxy-headers`); ranges and the rest are checked
# by the model, so a bad flag and a bad SYSSTREAM_* variable get the same one-line error.
def model_options(
    model: type[BaseSettings],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for name, field in reversed(model.model_fields.items()):
            command = _option(name, field)(command)
        return command

    return decorate


def _option(name: str, field: FieldInfo) -> Callable[[Callable[..., None]], Callable[..., None]]:
    dashed = "--" + name.replace("_", "-")
    flags = [dashed]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(alias := extra.get("flag_alias"), str):
        flags.append(alias)  # a short name the docs use (`serve --redis URL`)
    help_text = (
        f"{field.description}{_range(field)} [env SYSSTREAM_{name.upper()}; {_default(field)}]"
    )
    if field.annotation is bool:
        # Off by default: a bare switch (`--no-store`); on by default: `--x/--no-x`.
        if field.default is False:
            return _setting_option(*flags, name, is_flag=True, help=help_text)
        pair = f"{dashed}/--no-{dashed[2:]}"
        return _setting_option(pair, name, help=help_text)
    many = get_origin(field.annotation) in (list, tuple)
    return _setting_option(*flags, name, type=_click_type(field), multiple=many, help=help_text)


class SettingOption(click.Option):
    """A flag generated from a settings field: its errors name the field's variable too."""


def _setting_option(
    *decls: str, **attrs: Any
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    # default None: an unset flag leaves the environment's value or the model's default.
    return click.option(*decls, cls=SettingOption, default=None, **attrs)


def _click_type(field: FieldInfo) -> click.ParamType[Any]:
    """The click type a setting's annotation calls for (conversion only: ranges and other
    checks stay with the model)."""
    if any(isinstance(marker, Directory) for marker in field.metadata):
        return click.Path(file_okay=False)
    if any(isinstance(marker, File) for marker in field.metadata):
        return click.Path(dir_okay=False)
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):  # `int | None`: the value's type
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is Literal:
        return click.Choice([str(choice) for choice in get_args(annotation)])
    if annotation is int:
        return click.INT
    if annotation is float:
        return click.FLOAT
    return click.STRING


def _range(field: FieldInfo) -> str:
    """The bounds the model enforces, written as click writes its ranges (`0<=x<=65535`)."""
    low = high = ""
    for bound in field.metadata:
        if (ge := getattr(bound, "ge", None)) is not None:
            low = f"{ge}<="
        elif (gt := getattr(bound, "gt", None)) is not None:
            low = f"{gt}<"
        if (le := getattr(bound, "le", None)) is not None:
            high = f"<={le}"
    return f" [{low}x{high}]" if low or high else ""


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return f"default {'on' if default else 'off'}"
    if default in (None, [], ()):
        return "no default"
    if isinstance(default, list | tuple):
        return "default " + ",".join(str(item) for item in default)
    return f"default {default}"


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


@cli.command(cls=SwitchCommand)
@settings_options
def serve(**flags: Any) -> None:
    """Serve the stream, the API and the dashboard."""
    settings = _settings_or_fail(Settings, flags)
    try:
        run_server(settings)
    except (ServeError, RuleError) as exc:
        _fail(str(exc))


@cli.group()
def alerts() -> None:
    """Alert rules (docs/alerts.md)."""


@alerts.command(name="check")
@click.argument("file", type=click.Path(dir_okay=False))
def alerts_check(file: str) -> None:
    """Validate an alert rule FILE without starting anything."""
    try:
        rules = load_rule_file(file)
    except RuleError as exc:
        _fail(str(exc))
    names = ", ".join(rule.name for rule in rules.rules) or "none"
    click.echo(f"{file}: ok: {len(rules.rules)} rules ({names}), {len(rules.notify)} destinations")


# How often a stop signal's cancellation is repeated while the work has not ended.
STOP_RETRY_SECONDS = 1.0


@cli.command(cls=SwitchCommand)
@model_options(AgentSettings)
def agent(**flags: Any) -> None:
    """Sample this host and publish each tick to Redis, for `serve --redis` hubs."""
    settings = _settings_or_fail(AgentSettings, flags)
    asyncio.run(_until_signalled(run_agent(settings)))


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGINT/SIGTERM, then cancel it: a stop signal is a clean exit.

    The cancellation is repeated every second until ``work`` ends: on Python 3.11 a
    timeout inside a dependency (redis-py's connection code) can swallow one cancellation
    that lands as its own timer fires, and an agent then kept publishing after SIGTERM.
    """
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        while not task.done():
            task.cancel()
            await asyncio.wait((task,), timeout=STOP_RETRY_SECONDS)
    finally:
        stop.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@cli.command(name="watch")
@click.argument("url", default="127.0.0.1:54112")
@click.option("--host", "host", help="A fleet host to watch on the hub at URL (see `h`).")
@click.option(
    "--token",
    envvar="SYSSTREAM_TOKEN",
    help="Bearer token, if the server wants one. [env SYSSTREAM_TOKEN]",
)
@click.option("--once", is_flag=True, help="Print one plain-text snapshot and exit.")
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many messages.")
def watch_command(
    url: str, host: str | None, token: str | None, once: bool, count: int | None
) -> None:
    """Watch the server at URL: a full-screen dashboard in a terminal, one line per message
    when piped. URL is ws://, http:// or host:port (default 127.0.0.1:54112); a fleet hub
    lists its hosts. Keys: q quit, p/space pause, c/m sort processes, / filter, h hosts."""
    try:
        endpoint = parse_endpoint(url, host)
    except EndpointError as exc:
        _fail(str(exc))
    try:
        if once:
            asyncio.run(watch_once(endpoint, token, Console()))
        elif sys.stdout.isatty():
            # Textual loads only for the full screen: `serve`, pipes and --once start faster.
            from ._watch_app import WatchApp

            app = WatchApp(endpoint, token, count=count, fleet=True if host else None)
            app.run()
            if app.refusal is not None:
                _stop(app.refusal)
        else:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(print_lines(endpoint, token, count))
    except Refused as exc:
        _stop(str(exc))
    except BrokenPipeError:
        # Whoever read our lines has gone (`sysstream watch | head`): stop quietly, as
        # cat does. stdout goes to /dev/null so the interpreter's last flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, TimeoutError, WebSocketException) as exc:
        _stop(f"cannot reach {endpoint.shown}: {describe_failure(exc)}")


def _stop(message: str) -> NoReturn:
    """The server refused: one line on stderr and exit status 1 (2 is for bad input)."""
    click.echo(f"sysstream: {message}", err=True)
    raise SystemExit(1)


def main() -> None:
    try:
        cli.main(prog_name="sysstream", standalone_mode=False)
    except click.Abort:  # Ctrl-C at a prompt
        raise SystemExit(130) from None
    except click.BadParameter as exc:
        _fail(_bad_parameter(exc))
    except click.ClickException as exc:
        _fail(f"{exc.format_message()} (see `sysstream --help`)")


def _bad_parameter(exc: click.BadParameter) -> str:
    """A flag click could not convert, named as the model's own errors name settings."""
    param = exc.param
    if isinstance(param, SettingOption) and param.name:
        return f"invalid {param.opts[0]} / SYSSTREAM_{param.name.upper()}: {exc.message}"
    return exc.format_message()
