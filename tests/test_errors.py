"""The exception tree: every error has a kind, and the CLI maps every kind to one exit code."""

from __future__ import annotations

from worker import errors
from worker.cli import EXIT_CODES, exit_code_of
from worker.errors import InternalError, Kind, WorkerError


def _error_classes() -> list[type[WorkerError]]:
    return [c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, WorkerError)]


def test_every_error_class_has_a_kind_the_cli_maps():
    assert set(EXIT_CODES) == set(Kind)
    assert sorted(EXIT_CODES.values()) == list(range(7))
    for cls in _error_classes():
        assert cls.kind in EXIT_CODES, cls.__name__


def test_the_documented_exit_codes():
    """README, Outcomes and exit codes: config 2, auth 3, guard 4, interrupted 5, unusable 6."""
    assert [exit_code_of(c("k", "m") if c is errors.ConfigError else c("m"))
            for c in (errors.ConfigError, errors.AuthError, errors.GuardRefused,
                      errors.LockHeld, errors.Interrupted, errors.UnusableResponse,
                      errors.ApiUnreachable, errors.InternalError)] == [2, 3, 4, 4, 5, 6, 6, 6]
    assert exit_code_of(None) == 0


def test_internal_error_names_the_first_exception_of_a_group():
    group = ExceptionGroup("many", [KeyError("id"), ValueError("x")])
    error = InternalError.of(group)
    assert str(error) == "internal error: KeyError: 'id'"
    assert "KeyError" in error.trace
