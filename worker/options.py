"""The command line's options, built from the key table: per command only its own, in groups,
with help that teaches (defaults in human units, the environment variable of each key,
``(repeatable)`` where it is, and examples).

Prefix abbreviations are off (``--older`` is not ``--older-than``), and an unknown command is
named with the commands there are.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any

from worker import __version__
from worker.durations import format_duration
from worker.environments import ENVIRONMENTS
from worker.keys import KEYS, Key

COMMANDS = ("plan", "run", "check", "explain", "spare", "history", "demo", "emulator")
JOB_COMMANDS = ("plan", "run", "check", "explain", "spare", "history")
HELPS = {
    "plan": "list and select; report what would be cancelled (never cancels)",
    "run": "list, select and cancel",
    "check": "validate config, credentials and one listing page (never cancels)",
    "explain": "print the effective configuration and where each value came from",
    "spare": "leave runs alone for a while (recorded in the state store; sends no request)",
    "history": "what the state store remembers: jobs, cancels, stuck reports, by week",
    "demo": "run plan and run against the embedded emulator",
    "emulator": "serve the Zuora Reporting API emulator",
}
GROUPS = {  # section -> the help group its keys are shown in
    "target": "target", "filters": "selection", "exclude": "selection",
    "safety": "safety", "pacing": "pacing", "listing": "listing", "output": "output",
    "run": "inputs and plan hand-off", "state": "memory across jobs",
}
# Keys a command does not take as a flag (they may still come from the env or a file).
NOT_FOR = {
    "plan": {"run.plan", "run.plan_max_age", "run.yes", "run.capture"},
    "run": {"run.plan_out", "run.capture"},
}
MEMORY_KEYS = {"state.url", "output.log_format", "output.log_level"}  # spare and history
CHECK_KEYS = {"filters.statuses", "pacing.rate", "pacing.attempt_timeout", "pacing.deadline",
              "listing.page_size", "listing.list_items_field", "output.output",
              "output.log_format", "output.log_level", "run.capture"}
METAVARS = {"duration": "DURATION", "int": "N", "float": "NUMBER", "str": "VALUE"}
NAMED_METAVARS = {"target.base_url": "URL", "target.environment": "NAME", "target.proxy": "URL",
                  "target.ca_file": "PATH", "output.report_file": "PATH",
                  "output.metrics_file": "PATH", "output.pushgateway": "URL",
                  "output.notify_webhook": "URL", "output.job_name": "NAME",
                  "run.lock_file": "PATH", "run.ids_file": "PATH", "run.plan": "PATH",
                  "run.plan_out": "PATH", "listing.list_items_field": "FIELD",
                  "state.url": "PATH|URL"}
LIST_METAVARS = {"filters.statuses": "STATUS", "filters.report_types": "TYPE",
                 "filters.created_by": "USER", "filters.report_ids": "ID",
                 "exclude.report_types": "TYPE", "exclude.created_by": "USER",
                 "exclude.report_ids": "ID"}
EXAMPLES = {
    "plan": ["zuora-reaper plan --environment us-sandbox --older-than 2h",
             "zuora-reaper plan --older-than 2h --status STARTED --plan-out plan.json",
             "zuora-reaper plan --older-than 1h --older-than PROCESSINGDATA=6h "
             "--exclude-created-by bot@example.com"],
    "run": ["zuora-reaper run --environment us-sandbox --older-than 2h --max-cancel 50",
            "zuora-reaper run --plan plan.json --older-than 2h --status STARTED",
            "zuora-reaper run --ids-file stuck.txt --older-than 30m"],
    "check": ["zuora-reaper check --environment us-sandbox",
              "zuora-reaper check --base-url https://rest.zuora.com --output json"],
    "spare": ["zuora-reaper spare 2c9a8f1e0d4b4c6e8a1f3b5d7e9f0a1b --for 2d "
              "--reason 'quarter close'",
              "zuora-reaper spare --list",
              "zuora-reaper spare --remove 2c9a8f1e0d4b4c6e8a1f3b5d7e9f0a1b"],
    "history": ["zuora-reaper history --since 30d",
                "zuora-reaper history --environment us-sandbox --output json",
                "zuora-reaper history --state postgresql://reaper@db/reaper --output csv"],
    "explain": ["zuora-reaper explain --config reaper.toml",
                "ZUORA_REAPER_RATE=5 zuora-reaper explain --older-than 2h"],
}


CREDENTIALS_NOTE = """\
credentials come from the environment only: ZUORA_CLIENT_ID and ZUORA_CLIENT_SECRET (OAuth),
or ZUORA_USERNAME and ZUORA_PASSWORD (--auth legacy); NAME_FILE may name a file holding one"""


def takes(command: str, key: Key) -> bool:
    """Whether ``command`` takes ``key`` as a flag (``explain`` takes them all: it shows what
    any flag would change)."""
    if key.cli_flag is None:
        return False
    if command == "check":
        return key.section == "target" or key.name in CHECK_KEYS
    if command in ("spare", "history"):
        return (key.section == "target" and key.name not in ("target.proxy", "target.ca_file")
                ) or key.name in MEMORY_KEYS
    return key.name not in NOT_FOR.get(command, set())


def human_default(key: Key) -> str:
    """A key's default as a person writes it: ``5m``, ``STARTED, QUERYDATA``, ``off``."""
    value = key.default
    if key.name == "state.url":  # "none" is a value of its own here: no memory
        return "$STATE_DIRECTORY or $XDG_STATE_HOME/zuora-reaper/state.db"
    if value is None:
        return "none"
    if key.kind == "duration":
        return format_duration(float(value))
    if key.kind == "bool":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(value) if value else ("none" if key.section == "exclude" else "all")
    return str(value)


def _help(key: Key) -> str:
    repeat = " (repeatable)" if key.kind == "list" or key.name == "filters.older_than" else ""
    choices = f" {{{'|'.join(key.choices)}}}" if key.choices and key.kind != "list" else ""
    return f"{key.help}{choices}{repeat}. Default: {human_default(key)}. Env: {key.env}"


def _add_key(group: argparse._ArgumentGroup, key: Key) -> None:
    flag = key.cli_flag
    assert flag is not None
    if key.kind == "bool":
        group.add_argument(flag, dest=key.name, action="store_const", const=True, default=None,
                           help=_help(key))
        return
    repeatable = key.kind == "list" or key.name == "filters.older_than"
    metavar = (LIST_METAVARS.get(key.name) or NAMED_METAVARS.get(key.name)
               or METAVARS.get(key.kind, "VALUE"))
    if key.kind == "choice":
        metavar = key.field.upper()
    group.add_argument(flag, dest=key.name, default=None, metavar=metavar, help=_help(key),
                       action="append" if repeatable else "store")


def add_job_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``command``, grouped by section."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    first = parser.add_argument_group("target")
    first.add_argument("--config", metavar="PATH", help="TOML config file (see "
                                                        "config.example.toml)")
    groups["target"] = first
    for key in KEYS:
        if takes(command, key):
            title = GROUPS[key.section]
            group = groups.get(title) or groups.setdefault(title,
                                                           parser.add_argument_group(title))
            _add_key(group, key)


def _epilog(command: str) -> str:
    lines = [f"  {example}" for example in EXAMPLES[command]]
    names = textwrap.fill(", ".join(ENVIRONMENTS), width=92, break_on_hyphens=False,
                          initial_indent="  ", subsequent_indent="  ")
    return ("examples:\n" + "\n".join(lines) + "\n\nenvironments (--environment NAME):\n"
            + names + "\n\n" + CREDENTIALS_NOTE)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every job command; ``demo`` and ``emulator`` parse their own options."""
    parser = argparse.ArgumentParser(
        prog="zuora-reaper", allow_abbrev=False,
        description="Find Zuora report runs stuck in progress and cancel them safely.",
        epilog="A bare 'zuora-reaper [options]' is 'zuora-reaper plan [options]': it never "
               "cancels anything. 'zuora-reaper COMMAND --help' shows a command's options.")
    parser.add_argument("--version", action="version", version=f"zuora-reaper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if name not in JOB_COMMANDS:
            sub.add_parser(name, help=HELPS[name], add_help=False)
            continue
        child = sub.add_parser(name, help=HELPS[name], description=HELPS[name],
                               usage=USAGES.get(name, f"zuora-reaper {name} [options]"),
                               epilog=_epilog(name), allow_abbrev=False,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_job_options(child, name)
        COMMAND_ARGS.get(name, lambda _: None)(child)
    return parser


def _spare_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("spare")
    group.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="the runs to spare")
    group.add_argument("--for", dest="spare_for", metavar="DURATION",
                       help="how long the spare lasts, e.g. 2d (required to add one)")
    group.add_argument("--reason", metavar="TEXT", help="why (shown in every report)")
    what = group.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the spares in force")
    what.add_argument("--remove", action="store_true", help="remove the spares of RUN_ID...")


def _history_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("history")
    group.add_argument("--since", metavar="DURATION", default="90d",
                       help="how far back, e.g. 30d or 1w. Default: 90d")
    group.add_argument("--output", dest="history_output", choices=("table", "json", "csv"),
                       default="table", help="table (a bar chart per week on a terminal), "
                                             "json or csv. Default: table")


COMMAND_ARGS = {"spare": _spare_args, "history": _history_args}
USAGES = {
    "spare": "zuora-reaper spare RUN_ID... --for DURATION [--reason TEXT] [options]\n"
             "       zuora-reaper spare --list [options]\n"
             "       zuora-reaper spare --remove RUN_ID... [options]",
    "history": "zuora-reaper history [--since DURATION] [--output table|json|csv] [options]",
}


class UnknownCommand(Exception):
    """The first word names no command (and is no option)."""


def normalise(argv: Sequence[str]) -> list[str]:
    """``[options]`` alone means ``plan [options]``; a first word that is no command is an
    error naming the commands."""
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "--version"):
        return args or ["plan"]
    if args[0].startswith("-"):
        return ["plan", *args]
    if args[0] not in COMMANDS:
        raise UnknownCommand(f"unknown command {args[0]!r}; commands: {', '.join(COMMANDS)} "
                             "(see zuora-reaper --help)")
    return args


def parse(args: list[str]) -> argparse.Namespace:
    """Parse a job command's arguments (argparse exits 2 on a usage error, 0 on --help)."""
    return build_parser().parse_args(args)


def command_args(ns: argparse.Namespace) -> dict[str, Any]:
    """A command's own arguments (no config key): spare's run ids, history's --since..."""
    return {k: v for k, v in vars(ns).items() if "." not in k and k not in ("command", "config")}


def given_flags(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, by key name (``section.field``)."""
    return {k: v for k, v in vars(ns).items() if "." in k and v is not None}
