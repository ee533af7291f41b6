"""Runtime settings: one validated object fed by flags and ``SYSSTREAM_*`` variables."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LogLevel", "Settings", "SettingsError", "load_settings"]

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class SettingsError(ValueError):
    """A setting failed validation; ``str()`` is one line naming the setting and the problem."""


class Settings(BaseSettings):
    """Everything the server reads at start. Immutable once built."""

    model_config = SettingsConfigDict(env_prefix="SYSSTREAM_", frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(54112, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    interval: float = Field(1.0, ge=0.05, le=3600, description="Seconds between samples.")
    disk_path: str = Field("/", description="Filesystem whose usage the `disk` field reports.")
    stall_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds a client may go without draining before drop."
    )
    history_seconds: int = Field(
        3600, ge=0, le=7 * 86400, description="Seconds of samples kept in memory."
    )
    log_level: LogLevel = Field("info", description="Log level of the server.")

    @field_validator("disk_path")
    @classmethod
    def _disk_path_exists(cls, value: str) -> str:
        if not os.path.isdir(value):
            raise ValueError(f"expected an existing directory, got {value!r}")
        return value


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (flags win).

    Raises :class:`SettingsError` with a single line on the first invalid value.
    """
    given = {key: value for key, value in overrides.items() if value not in (None, ())}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``--flag / SYSSTREAM_FLAG: message (got 'value')``."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "settings"
    flag = "--" + name.replace("_", "-")
    env = "SYSSTREAM_" + name.upper()
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = repr(str(got))
    quiet = isinstance(got, dict) or got is None or shown in message
    suffix = "" if quiet else f" (got {shown})"
    return f"invalid {flag} / {env}: {message}{suffix}"
