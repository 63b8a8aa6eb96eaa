"""``zuora-reaper spare RUN_ID... --for D [--reason TEXT]``, ``--list`` and ``--remove``.

A spared run is never selected (reason ``spared``) until the spare expires; every report
names who asked (``$USER``) and why. A spare is recorded under the target's identity (the
same target options as ``run``: base URL, principal, entity), so only the jobs of that target
see it. No request is sent.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime

import structlog

from worker.api_bodies import check_run_id
from worker.config import Settings
from worker.durations import format_duration, parse_duration
from worker.errors import ConfigError, Kind, StateUnavailable, WorkerError
from worker.report import iso
from worker.state.store import Spare, Store, open_for

log = structlog.get_logger("worker.commands.spare")

MAX_SPARE_S = 366 * 86400.0
MAX_REASON = 500


def main(settings: Settings) -> Kind:
    """Add, list or remove spares; the kind of the ending (the CLI maps it to an exit code)."""
    try:
        store = open_for(settings, os.environ, create=False)
        if store is None:
            raise StateUnavailable("spare needs the state store, and --state is none (or its "
                                   "default location is not writable)")
        try:
            return _act(settings, store)
        finally:
            store.close()
    except WorkerError as exc:
        print(f"zuora-reaper spare: {exc}", file=sys.stderr)
        return exc.kind


def _act(settings: Settings, store: Store) -> Kind:
    args, target = settings.args, settings.identity.key
    now = datetime.now(UTC).timestamp()
    if args.get("list"):
        _print_list(store.spares(target, now), settings)
        return Kind.OK
    ids = _run_ids(args.get("run_ids") or [])
    if args.get("remove"):
        removed = store.remove_spares(target, ids)
        print(f"removed {removed} of {len(ids)} spare(s) for {settings.identity.describe()}")
        return Kind.OK
    seconds = _duration(args.get("spare_for"))
    reason = (args.get("reason") or "").strip()[:MAX_REASON] or None
    who = _who()
    unseen = sorted(set(ids) - set(store.recall(target, ids)))
    if unseen:
        print(f"zuora-reaper spare: warning: no job of {settings.identity.describe()} has seen "
              f"{', '.join(unseen[:5])}{' ...' if len(unseen) > 5 else ''} in this store (is "
              "--state the scheduled job's, and the target the same?); spared all the same",
              file=sys.stderr)
    store.add_spares([Spare(target, run_id, now + seconds, who, reason, now) for run_id in ids])
    until = iso(datetime.fromtimestamp(now + seconds, UTC))
    log.info("spare.added", runs=len(ids), until=until, by=who)
    print(f"spared {len(ids)} run(s) until {until} ({format_duration(seconds)}) for "
          f"{settings.identity.describe()}")
    return Kind.OK


def _who() -> str:
    """Who asked: ``$USER`` (a container's arbitrary uid may have no name at all)."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if name:
        return name[:100]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _run_ids(values: list[str]) -> list[str]:
    if not values:
        raise ConfigError("spare", "name the runs: zuora-reaper spare RUN_ID... --for 2d "
                                   "(or --list)")
    ids = []
    for value in values:
        run_id, problem = check_run_id(value)
        if run_id is None:
            raise ConfigError("spare", f"{value[:80]!r} is not a run id: {problem}")
        ids.append(run_id)
    return list(dict.fromkeys(ids))


def _duration(text: str | None) -> float:
    if not text:
        raise ConfigError("spare", "--for DURATION is needed: how long to spare the runs, "
                                   "e.g. --for 2d")
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError("--for", str(exc)) from exc
    if not 0 < seconds <= MAX_SPARE_S:
        raise ConfigError("--for", f"{text!r} is out of range; allowed: 1s to 366d")
    return seconds


def _print_list(items: list[Spare], settings: Settings) -> None:
    print(f"{len(items)} spare(s) in force for {settings.identity.describe()}")
    for item in items:
        until = iso(datetime.fromtimestamp(item.until, UTC))
        why = f"  {item.reason}" if item.reason else ""
        print(f"  {item.run_id}  until {until}  by {item.by_user}{why}")
