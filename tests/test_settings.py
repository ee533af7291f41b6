from __future__ import annotations

import pytest

from sysstream import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.interval) == ("127.0.0.1", 54112, 1.0)
    assert settings.disk_path == "/"
    assert settings.stall_timeout == 10.0


def test_environment_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSSTREAM_INTERVAL", "2.5")
    monkeypatch.setenv("SYSSTREAM_PORT", "9000")
    settings = load_settings(port="9100")
    assert settings.interval == 2.5
    assert settings.port == 9100


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"interval": "0"}, "invalid --interval / SYSSTREAM_INTERVAL: Input should be greater"),
        ({"port": "70000"}, "invalid --port / SYSSTREAM_PORT: Input should be less than"),
        ({"disk_path": "/nope"}, "expected an existing directory, got '/nope'"),
        ({"token": "short"}, "invalid --token / SYSSTREAM_TOKEN: expected at least 16"),
        (
            {"history_budget_mib": "8"},
            "invalid --history-budget-mib / SYSSTREAM_HISTORY_BUDGET_MIB: Input should be greater",
        ),
    ],
)
def test_errors_are_one_line_naming_flag_and_variable(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**overrides)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_bad_token_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(token="tiny secret")
    assert "tiny secret" not in str(raised.value)
