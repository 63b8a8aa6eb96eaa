"""The command line: parse, load settings, run the job, report, and decide the exit code.

Exit codes: 0 all selected runs ended well (or nothing to do); 1 some failed; 2 usage or config
error (before any network call); 3 authentication or permission failure; 4 refused by a safety
guard; 5 interrupted or deadline/budget reached; 6 the API answered something unusable or could
not be reached for listing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from worker.config import BY_STATUS, load_settings
from worker.errors import ConfigError
from worker.keys import KEYS
from worker.logs import Redactor
from worker.secrets import env_secrets

COMMANDS = ("plan", "run", "check", "explain", "demo", "emulator")
JOB_COMMANDS = ("plan", "run", "check", "explain")


def build_parser() -> argparse.ArgumentParser:
    """The parser; every option comes from ``worker.keys.KEYS``."""
    parser = argparse.ArgumentParser(
        prog="zuora-reaper",
        description="Find Zuora report runs stuck in progress and cancel them safely.",
        epilog="A bare 'zuora-reaper [options]' is 'zuora-reaper plan [options]': "
               "it never cancels anything.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {"plan": "list and select; report what would be cancelled (never cancels)",
             "run": "list, select and cancel", "check": "validate config, auth and listing",
             "explain": "print the effective configuration and where each value came from"}
    for name in JOB_COMMANDS:
        add_job_options(sub.add_parser(name, help=helps[name], description=helps[name]))
    sub.add_parser("demo", help="run plan and run against the embedded emulator",
                   add_help=False)
    sub.add_parser("emulator", help="serve the Zuora Reporting API emulator", add_help=False)
    return parser


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML config file")
    for key in KEYS:
        flag = key.cli_flag
        if flag is None:
            continue
        text = f"{key.help} [env {key.env}; default {key.default!r}]"
        if key.choices and key.kind != "list":
            text = f"{key.help} ({'|'.join(key.choices)}) [env {key.env}; default {key.default}]"
        if key.kind == "bool":
            parser.add_argument(flag, dest=key.name, action="store_const", const=True,
                                default=None, help=text)
        elif key.kind == "list" or key.name == "filters.older_than":
            parser.add_argument(flag, dest=key.name, action="append", default=None,
                                metavar=key.field.rstrip("s").upper(), help=text)
        else:
            parser.add_argument(flag, dest=key.name, default=None,
                                metavar=key.kind.upper(), help=text)


def flags_from(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, by key name; ``--older-than S=D`` goes per status."""
    flags = {k: v for k, v in vars(ns).items() if "." in k and v is not None}
    older = flags.pop("filters.older_than", None)
    if older:
        by_status = {}
        for item in older:
            status, sep, duration = item.partition("=")
            if sep:
                by_status[status.strip()] = duration.strip()
            else:
                flags["filters.older_than"] = item
        if by_status:
            flags[BY_STATUS] = by_status
    return flags


def _normalise(argv: list[str]) -> list[str]:
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return ["plan", *argv]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zuora-reaper`` console script; returns the exit code."""
    args_list = _normalise(list(sys.argv[1:] if argv is None else argv))
    if args_list[0] == "emulator":
        from worker.emulator.cli import main as emulator_main
        return emulator_main(args_list[1:])
    if args_list[0] == "demo":
        from worker.demo import main as demo_main
        return demo_main(args_list[1:])
    try:
        ns = build_parser().parse_args(args_list)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    try:
        settings = load_settings(ns.command, flags_from(ns), os.environ, ns.config)
    except ConfigError as exc:
        message = Redactor(env_secrets(os.environ)).scrub(str(exc))
        print(f"zuora-reaper: config error: {message}", file=sys.stderr)
        return 2
    from worker.runner import execute
    return execute(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
