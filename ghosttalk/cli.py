"""Command line: ``ghosttalk`` serves, ``ghosttalk config`` shows the settings it would serve with, and
``ghosttalk join`` and ``ghosttalk bench`` are tools built on the client.

Flag names and environment variables follow the Go original, so ``ghosttalk -port 8080 -admin-key K`` works
as its binary did; every long flag is accepted with one dash or two. The flags are made from the setting
descriptions in :mod:`ghosttalk.config`; nothing here names a setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from ghosttalk.config import OPTIONS, BadValue, ConfigError, Option, Resolved, Source, resolve
from ghosttalk.version import commit, version

SUBCOMMANDS = ("serve", "config", "join", "bench")
# What `ghosttalk config` shows for a secret that is set: always the same, so not even its length shows.
MASK = "********"


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.convert(text)
        except BadValue as exc:
            # argparse prints this message after the flag's name ("argument -port/--port: ...").
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _help(option: Option) -> str:
    # The default comes from Config, never from the environment: --help must not print a secret set there.
    text = f"{option.setting.help.replace('`', '')} (env {option.env}; default {option.default_text})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def build_serve_parser(prog: str = "ghosttalk") -> argparse.ArgumentParser:
    """The serve flags. A flag not given is absent from the parsed namespace (so that the environment, the
    config file or the default can supply it): use :func:`settings_from_args` for the effective Config."""
    parser = argparse.ArgumentParser(
        prog=prog,
        # The generated list of every flag would make a usage line of twenty; --help lists them.
        usage="%(prog)s [--config FILE] [--FLAG VALUE ...]",
        description="Serve GhostTalk: the page, WebSocket signaling, the admin panel and the SFU media path. "
        "Each setting comes from its flag, else its environment variable, else the --config file, else its "
        "default.",
        epilog="Subcommands: 'ghosttalk config' prints the effective settings and where each came from; "
        "'ghosttalk join URL --name N' joins a room from the shell; 'ghosttalk bench' measures the forwarding "
        "path. Each has its own --help.",
    )
    parser.add_argument(
        "-config", "--config", type=Path, metavar="FILE", default=None,
        help="TOML file of settings, keyed by flag name: port = 8080, max-room-peers = 10, "
        'rtc-host = ["192.0.2.1"]. Flags and environment variables win over it.',
    )  # fmt: skip
    for option in OPTIONS:
        choices = option.setting.choices
        parser.add_argument(
            f"-{option.flag}", f"--{option.flag}", dest=option.name, type=_argparse_type(option),
            default=argparse.SUPPRESS, metavar="{" + ",".join(choices) + "}" if choices else option.env,
            help=_help(option),
        )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"ghosttalk {version()} ({commit()})")
    return parser


def settings_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Resolved:
    """The effective settings for parsed serve flags. A bad environment or file value exits with status 2 as a
    bad flag does; its message names the variable or the file and key, so the usage line would only be noise."""
    flags = {option.name: getattr(args, option.name) for option in OPTIONS if hasattr(args, option.name)}
    try:
        return resolve(flags, os.environ if environ is None else environ, args.config)
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Resolved:
    parser = build_serve_parser()
    return settings_from_args(parser, parser.parse_args(argv), environ)


# --- ghosttalk config -------------------------------------------------------------------------------------------


def _shown(option: Option, value: Any) -> str:
    if option.secret and value:
        return MASK
    return option.text(value)


def _json_value(option: Option, value: Any) -> Any:
    if option.secret and value:
        return MASK
    if isinstance(value, tuple):
        return [str(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _origin(option: Option, resolved: Resolved) -> str:
    source = resolved.sources[option.name]
    if source is Source.ENV:
        return f"env {option.env}"
    if source is Source.FILE:
        return f"file {resolved.file}"
    return source.value


def describe(resolved: Resolved) -> str:
    """One line per setting: flag name, value (secrets masked), and where the value came from."""
    rows = [(o.flag, _shown(o, getattr(resolved.config, o.name)), _origin(o, resolved)) for o in OPTIONS]
    name_width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    return "".join(f"{name:<{name_width}}  {value:<{value_width}}  {origin}\n" for name, value, origin in rows)


def describe_json(resolved: Resolved) -> str:
    settings = {
        o.flag: {"value": _json_value(o, getattr(resolved.config, o.name)), "source": resolved.sources[o.name].value,
                 "env": o.env}
        for o in OPTIONS
    }  # fmt: skip
    document = {"config_file": None if resolved.file is None else str(resolved.file), "settings": settings}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def flags_table() -> str:
    """The README's table of settings, one row per setting."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `-{o.flag}` | `{o.env}` | {cell(o.default_text)} | {cell(o.setting.help)} |" for o in OPTIONS]
    return "\n".join(lines) + "\n"


def config_main(argv: Sequence[str], out: TextIO | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_serve_parser(prog="ghosttalk config")
    parser.description = (
        "Print the settings that 'ghosttalk' would serve with, given the same flags, environment and --config "
        "file, and where each value came from (flag, env, file or default). Secrets are masked."
    )
    parser.usage = "%(prog)s [--json | --markdown] [--config FILE] [--FLAG VALUE ...]"
    parser.epilog = None
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object instead of one line per setting")
    output.add_argument("--markdown", action="store_true",
                        help="print the README's table of every setting (for maintainers) and nothing else")
    args = parser.parse_args(argv)
    out = sys.stdout if out is None else out
    if args.markdown:
        out.write(flags_table())
        return 0
    resolved = settings_from_args(parser, args, environ)
    out.write(describe_json(resolved) if args.json else describe(resolved))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else "serve"
    if args and args[0] in SUBCOMMANDS:
        args = args[1:]
    # Each command imports its part only when it runs (never to dodge an import cycle: tests/test_imports.py
    # counts these too): `ghosttalk --help` stays fast, and the server never loads the client or the benchmark.
    if command == "join":
        from ghosttalk.client.join import main as join_main

        return join_main(args)
    if command == "bench":
        from ghosttalk.benchmark.command import main as bench_main

        return bench_main(args)
    if command == "config":
        return config_main(args)
    # Settings first: a bad value is reported at once, before the server's imports take their second.
    resolved = parse_settings(args)
    if resolved.config.workers > 1:
        # This process only starts and watches the nodes: it never loads the server (nor aiohttp, nor aiortc).
        from ghosttalk.server.supervisor import supervise

        return supervise(resolved, args)
    # The server's imports keep out what it never uses (FFmpeg, an mDNS resolver, the CA store of aiohttp's client).
    from ghosttalk.server.footprint import load_serve

    return load_serve()(resolved.config, resolved.file)
