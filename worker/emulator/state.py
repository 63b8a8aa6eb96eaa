"""Live emulator state: runs, issued tokens, request records."""

from __future__ import annotations

import bisect
import itertools
import random
import uuid

from .config import EmulatorConfig
from .model import EmuRun, RequestRecord
from .population import load_runs_file, new_id, seeded_runs


class State:
    """Everything the handlers read and change. Single event loop, no locking."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.runs: dict[str, EmuRun] = {}
        self.records: list[RequestRecord] = []
        self.cancelled: set[str] = set()
        self.tokens: dict[str, float] = {}
        self.rng = random.Random(f"runtime:{config.seed}")
        self._seq = itertools.count(1)
        self.populate(config)

    def populate(self, config: EmulatorConfig) -> None:
        """(Re)build the run population from runs_file or from the seed."""
        if config.runs_file is not None:
            runs = load_runs_file(config.runs_file)
        else:
            runs = seeded_runs(config.runs, config.seed, config.in_progress_share, config.clock())
        self.runs = {run.id: run for run in runs}

    def next_seq(self) -> int:
        return next(self._seq)

    def add_record(self, record: RequestRecord) -> None:
        """Keep records ordered by arrival (seq) even when answers finish out of order."""
        bisect.insort(self.records, record, key=lambda r: r.seq)

    def new_run_id(self) -> str:
        return new_id(self.rng)

    def issue_token(self, expires_at: float) -> str:
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self.tokens[token] = expires_at
        return token

    def token_valid(self, token: str, now: float) -> bool:
        expires_at = self.tokens.get(token)
        return expires_at is not None and now < expires_at

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = float("-inf")
