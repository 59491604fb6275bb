"""The options: defined once, validated, and the docs generated from them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from poolserver.cli import build_parser, env_name, flag_name, load_config
from poolserver.config import Config, options_table

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_bounded() -> None:
    config = Config()
    for name in ("header_timeout", "read_timeout", "keepalive_timeout", "write_timeout"):
        assert 0 < getattr(config, name) < 3600
    assert config.queue_size < 10_000
    assert config.max_body_size < 2**31


@pytest.mark.parametrize(
    "changes",
    [
        {"workers": 0},
        {"port": -1},
        {"header_timeout": 0},
        {"log_level": "loud"},
        {"app": "no_colon"},
        {"queue_timeout": -0.5},
    ],
)
def test_nonsense_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Config(**changes)  # type: ignore[arg-type]


def test_every_field_has_help_a_flag_and_an_env_var() -> None:
    parser_help = build_parser().format_help()
    for item in dataclasses.fields(Config):
        assert item.metadata["help"]
        if not item.metadata["positional"]:
            assert flag_name(item.name) in parser_help
        assert env_name(item.name) in options_table()


def test_command_line_wins_over_environment_over_default() -> None:
    env = {"POOLSERVER_WORKERS": "3", "POOLSERVER_QUEUE_SIZE": "7", "POOLSERVER_ACCESS_LOG": "yes"}
    config = load_config(["--workers", "5", "myapp:application"], env)
    assert config.workers == 5
    assert config.queue_size == 7
    assert config.access_log is True
    assert config.app == "myapp:application"
    assert config.port == Config().port


def test_boolean_flags_turn_on_and_off() -> None:
    assert load_config(["--access-log"], {}).access_log is True
    assert load_config(["--no-access-log"], {"POOLSERVER_ACCESS_LOG": "1"}).access_log is False


def test_bad_values_are_reported_not_raised() -> None:
    with pytest.raises(SystemExit, match="POOLSERVER_WORKERS"):
        load_config([], {"POOLSERVER_WORKERS": "many"})
    with pytest.raises(SystemExit, match="workers"):
        load_config(["--workers", "0"], {})


def test_docs_options_table_is_generated_from_the_config() -> None:
    doc = (ROOT / "docs" / "options.md").read_text()
    assert options_table() in doc, "docs/options.md is stale: run scripts/options-doc"


def test_help_runs_as_a_program() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "poolserver", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "--queue-timeout" in out
    assert "POOLSERVER_" in out
