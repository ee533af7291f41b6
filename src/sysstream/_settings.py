"""Runtime settings: one validated object fed by flags and ``SYSSTREAM_*`` variables."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Any, Literal, TypeVar

import platformdirs
from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .sansio import RuleError, check_redis_url, parse_origin_pattern, parse_rule_text

__all__ = [
    "Directory",
    "File",
    "LogLevel",
    "Settings",
    "SettingsError",
    "check_rule_file",
    "load_settings",
]

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


# Never echoed in error messages (a Redis URL's own messages show it with the password
# redacted).
SECRET_FIELDS = frozenset({"token", "redis_url"})


def _proxy_address(entry: str) -> str:
    if entry != "*":
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"expected an IP address, a network or *, got {entry!r}") from None
    return entry


def _existing_directory(value: str) -> str:
    if not os.path.isdir(value):
        raise ValueError(f"expected an existing directory, got {value!r}")
    return value


# Each distinct view costs one encoding per due tick (~20 µs; 1,000 views took 22 ms a
# tick): this many keep a tick's fan-out in single milliseconds whatever clients ask for.
DEFAULT_MAX_VIEWS = 256
# Fleet mode: each host costs a hub, its history (at most 16 MiB) and a tick of CPU per
# interval; anyone who can publish to Redis can invent hosts.
DEFAULT_MAX_HOSTS = 256


class Directory:
    """Marks a setting that names a directory, so the command line shows it as a path."""


class File:
    """Marks a setting that names a file, so the command line shows it as a path."""


ExistingDirectory = Annotated[str, AfterValidator(_existing_directory), Directory()]


def _directory_or_absent(value: str) -> str:
    # The store creates a missing directory; a file in its place would fail later, after
    # the server had announced itself.
    if os.path.exists(value) and not os.path.isdir(value):
        raise ValueError(f"expected a directory, or a path to create one at, got a file: {value!r}")
    return value


ModelT = TypeVar("ModelT", bound=BaseSettings)


class SettingsError(ValueError):
    """A setting failed validation; ``str()`` is one line naming the setting and the problem."""


class Settings(BaseSettings):
    """Everything the server reads at start. Immutable once built."""

    model_config = SettingsConfigDict(env_prefix="SYSSTREAM_", frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(54112, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    interval: float = Field(1.0, ge=0.05, le=3600, description="Seconds between samples.")
    disk_path: ExistingDirectory = Field(
        "/", description="Filesystem whose usage the `disk` field reports."
    )
    stall_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds a client may go without draining before drop."
    )
    ping_interval: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds between keepalive pings; unanswered within --stall-timeout: drop.",
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds a connection may take to send a request (or WebSocket handshake).",
    )
    history_seconds: int = Field(
        3600, ge=0, le=7 * 86400, description="Seconds of samples kept in memory."
    )
    # The history store (docs/history.md).
    data_dir: Annotated[str, AfterValidator(_directory_or_absent), Directory()] = Field(
        platformdirs.user_data_dir("sysstream"),
        min_length=1,
        description="Directory of the history database (history.sqlite3).",
    )
    no_store: bool = Field(False, description="Keep no history on disk (memory only).")
    flush_interval: float = Field(
        5.0, gt=0, le=300, description="Seconds between history writes; a crash loses at most this."
    )
    retention_raw: int = Field(
        3600, ge=60, le=3650 * 86400, description="Seconds raw ticks are kept on disk."
    )
    retention_1m: int = Field(
        7 * 86400, ge=900, le=3650 * 86400, description="Seconds 1-minute min/avg/max are kept."
    )
    retention_15m: int = Field(
        90 * 86400, ge=900, le=3650 * 86400, description="Seconds 15-minute min/avg/max are kept."
    )
    docker_host: str | None = Field(
        None,
        pattern=r"^unix:///",
        description="Container engine socket (Docker or Podman) for `containers`, as"
        " unix:///path; default $DOCKER_HOST, then /var/run/docker.sock.",
    )
    log_level: LogLevel = Field("info", description="Log level of the server.")
    # Security and limits (docs/security.md). List settings take a repeated flag, or in
    # the environment a JSON list or a comma-separated string.
    token: SecretStr | None = Field(
        None, description="Bearer token every endpoint but /healthz and the dashboard requires."
    )
    allow_origin: Annotated[
        list[Annotated[str, AfterValidator(parse_origin_pattern)]], NoDecode
    ] = Field([], description="Extra browser origins (or patterns) allowed to open the stream.")
    max_clients: int | None = Field(
        None, ge=1, description="Most streams at once; default sized to the open-files limit."
    )
    max_views: int = Field(
        DEFAULT_MAX_VIEWS,
        ge=1,
        le=100_000,
        description="Most distinct subscriptions (fields and interval) at once; more are refused.",
    )
    # At least the largest history response (16 MiB), or that one could never be sent.
    history_budget_mib: int = Field(
        64,
        ge=16,
        le=1024 * 1024,
        description="MiB of history responses held for clients yet to read them; past it, 503.",
    )
    proxy_headers: bool = Field(
        True, description="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips."
    )
    forwarded_allow_ips: Annotated[
        list[Annotated[str, AfterValidator(_proxy_address)]], NoDecode
    ] = Field(["127.0.0.1", "::1"], description="Proxy addresses whose X-Forwarded-* are trusted.")
    # Alerts (docs/alerts.md): built-in rules unless --no-alerts; a file adds and overrides.
    alerts: Annotated[str | None, File()] = Field(
        None, description="Alert rules and notification destinations (TOML file)."
    )
    no_alerts: bool = Field(False, description="Evaluate no alert rules at all.")
    redis_url: str | None = Field(
        None,
        description="Fleet mode: Redis URL (redis://, rediss://) to serve agents' hosts from.",
        json_schema_extra={"flag_alias": "--redis"},
    )
    max_hosts: int = Field(
        DEFAULT_MAX_HOSTS,
        ge=1,
        le=100_000,
        description="Fleet mode: most hosts served; ticks of hosts past it are dropped.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)

    @field_validator("alerts")
    @classmethod
    def _alerts_file_valid(cls, value: str | None) -> str | None:
        if value is not None:
            check_rule_file(value)
        return value

    @field_validator("allow_origin", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("expected a JSON list or comma-separated values") from None
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("token")
    @classmethod
    def _token_strong(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never includes the value: it is a secret.
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < 16 or not all(33 <= ord(char) <= 126 for char in secret):
            raise ValueError(
                "expected at least 16 printable ASCII characters without spaces (make one with"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value


def check_rule_file(path: str) -> None:
    """Read and validate an alert rule file; ``ValueError`` with one line if it is not."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(1_000_001)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(f"cannot read {path}: {reason}") from None
    if len(text) > 1_000_000:
        raise ValueError(f"{path}: expected a rule file under 1 MB")
    try:
        parse_rule_text(text)
    except RuleError as exc:
        raise ValueError(f"{path}: {exc}") from None


def validated(model: type[ModelT], **overrides: object) -> ModelT:
    """Build ``model`` from the environment plus explicit overrides (flags win); unset flags
    (None, or an empty repeated flag) leave the environment's value or the default.

    Raises :class:`SettingsError` with a single line on the first invalid value.
    """
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v not in (None, ())}
    try:
        return model(**given)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def load_settings(**overrides: object) -> Settings:
    """The server's settings: :func:`validated` for :class:`Settings`."""
    return validated(Settings, **overrides)


def describe_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``--flag / SYSSTREAM_FLAG: message (got 'value')``."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "settings"
    flag = "--" + name.replace("_", "-")
    env = "SYSSTREAM_" + name.upper()
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = repr(str(got))
    secret = name in SECRET_FIELDS
    # A message that names the value already (quoted, or as its subject: a file's path
    # before what is wrong in it) needs no "(got …)" repeating it.
    named = shown in message or message.startswith(f"{got}: ")
    quiet = secret or isinstance(got, dict) or got is None or named
    suffix = "" if quiet else f" (got {shown})"
    return f"invalid {flag} / {env}: {message}{suffix}"
