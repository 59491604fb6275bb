"""The command line: `poolserver [MODULE:APP] [options]`, generated from `Config`'s fields.

Each option is read, in order of precedence, from the command line (`--queue-size 8`), the
environment (`POOLSERVER_QUEUE_SIZE=8`), or the field's default.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__
from .config import Config, process_count
from .wsgi import WSGIApp

ENV_PREFIX = "POOLSERVER_"


def env_name(field_name: str) -> str:
    """`queue_size` -> `POOLSERVER_QUEUE_SIZE`."""
    return ENV_PREFIX + field_name.upper()


def flag_name(field_name: str) -> str:
    """`queue_size` -> `--queue-size`."""
    return "--" + field_name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_CONVERTERS: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": _parse_bool}


def _converter(annotation: object) -> Any:
    """The parser of a field's text: `int | None` takes "none" (or nothing) for None."""
    base, _, rest = str(annotation).partition(" | ")
    convert = _CONVERTERS[base]
    if rest != "None":
        return convert

    def optional(text: str) -> Any:
        return None if text.strip().lower() in ("", "none") else convert(text)

    optional.__name__ = convert.__name__  # argparse names the type in its errors
    return optional


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one argument per config field."""
    parser = argparse.ArgumentParser(
        prog="poolserver",
        description="Serve a WSGI application over HTTP/1.1 on a bounded worker pool.",
        epilog=f"Every option can also be set as an environment variable {ENV_PREFIX}<OPTION>.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"poolserver {__version__}")
    for item in dataclasses.fields(Config):
        help_text = f"{item.metadata['help']} (default: {item.default})"
        if item.metadata["positional"]:
            parser.add_argument(item.name, nargs="?", help=help_text)
        elif item.type == "bool":
            parser.add_argument(
                flag_name(item.name), action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(
                flag_name(item.name),
                type=_converter(item.type),
                choices=item.metadata["choices"] or None,
                metavar=item.name.upper(),
                help=help_text,
            )
    return parser


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """The config from the command line over the environment over the defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in dataclasses.fields(Config):
        raw = environ.get(env_name(item.name))
        if raw is not None:
            try:
                values[item.name] = _converter(item.type)(raw)
            except ValueError as exc:
                raise SystemExit(f"poolserver: {env_name(item.name)}: {exc}") from exc
    values.update(vars(build_parser().parse_args(argv)))
    try:
        return Config(**values)
    except ValueError as exc:
        raise SystemExit(f"poolserver: {exc}") from exc


def load_app(target: str) -> WSGIApp:
    """Import `MODULE:ATTRIBUTE` (attribute may be dotted); the current directory is importable."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise SystemExit(f"poolserver: {target} is not callable")
    app: WSGIApp = obj
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `poolserver` command."""
    config = load_config(argv)
    several = process_count(config) > 1 or config.max_requests is not None
    logging.basicConfig(
        level=config.log_level.upper(),
        # With several processes, each line says which one wrote it.
        format="%(asctime)s %(levelname)s %(name)s"
        + (" [%(process)d]" if several else "")
        + ": %(message)s",
        stream=sys.stderr,
    )
    from .server import Server, Supervisor  # noqa: PLC0415 - config errors come first

    if process_count(config) > 1 or config.max_requests is not None:
        # A process of its own per core, or one that is replaced now and then: a supervisor.
        app = load_app(config.app) if config.preload else None
        return Supervisor(config, app, load_app).run()
    return Server(load_app(config.app), config).serve()
