"""Expected failures and the exit-code table.

Every failure a user can cause or fix (unknown model, missing env, bad dataroot, a model that
crashed) raises an :class:`OnlinemapError`. The CLI prints its one-line message and hint and
exits with its code; anything else is a bug and shows a traceback. docs/exit-codes.md mirrors
the table below.
"""
from __future__ import annotations

__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_MISSING", "EXIT_BAD_INPUT", "EXIT_LOCKED", "EXIT_TIMEOUT",
    "EXIT_INTERRUPTED", "EXIT_TERMINATED", "EXIT_HANGUP", "EXIT_CODES", "exit_code_for_signal",
    "OnlinemapError", "UsageError", "UnknownModelError", "SpecError", "MissingPrerequisiteError",
    "DatasetError", "RunFailedError", "RunTimeoutError", "RunInterruptedError", "ResultsError",
]

EXIT_OK = 0
EXIT_FAILED = 1          # a run failed (model crashed, invalid predictions) or a check failed
EXIT_USAGE = 2           # bad command line: unknown model, bad option value (click uses 2 too)
EXIT_MISSING = 3         # a prerequisite is missing: env, repo, weights, dataset, GPU
EXIT_BAD_INPUT = 4       # a file we read is malformed: model.toml, lock, results, dataset tables
EXIT_LOCKED = 75         # another nightly job holds the lock (sysexits EX_TEMPFAIL: try again later)
EXIT_TIMEOUT = 124       # wall-clock or inactivity timeout (as coreutils `timeout`)
EXIT_INTERRUPTED = 130   # Ctrl-C / SIGINT (128 + 2)
EXIT_TERMINATED = 143    # SIGTERM (128 + 15)
EXIT_HANGUP = 129        # SIGHUP (128 + 1): the terminal or SSH session went away

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "a run failed or produced invalid predictions",
    EXIT_USAGE: "bad command line (unknown model, invalid option value)",
    EXIT_MISSING: "a prerequisite is missing (env, repo, weights, dataset, GPU)",
    EXIT_BAD_INPUT: "a file is malformed (model.toml, lock file, results, dataset tables)",
    EXIT_LOCKED: "another nightly job holds the lock; the holder is named",
    EXIT_TIMEOUT: "the model process hit the wall-clock, launch or inactivity timeout",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (SIGINT); finished samples are kept",
    EXIT_TERMINATED: "terminated by SIGTERM; finished samples are kept",
    EXIT_HANGUP: "the terminal hung up (SIGHUP, e.g. an SSH session dropped); finished samples are kept",
}


def exit_code_for_signal(signame: str) -> int:
    """The exit code of a run stopped by the driver signal ``signame`` (SIGINT, SIGTERM, SIGHUP)."""
    return {"SIGTERM": EXIT_TERMINATED, "SIGHUP": EXIT_HANGUP}.get(signame, EXIT_INTERRUPTED)


class OnlinemapError(Exception):
    """A failure the user can act on: one-line ``message``, a ``hint`` saying how to fix it."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        """The text the CLI prints: message, then the hint after an arrow."""
        return f"{self.message} -> {self.hint}" if self.hint else self.message


class UsageError(OnlinemapError):
    """A command-line value is wrong (bad sample count, unknown device string)."""

    exit_code = EXIT_USAGE


class UnknownModelError(UsageError):
    """A model name that no ``envs/<Model>/model.toml`` defines."""


class SpecError(OnlinemapError):
    """A committed spec file (model.toml, environment.yml, lock) is malformed: names file and field."""

    exit_code = EXIT_BAD_INPUT


class MissingPrerequisiteError(OnlinemapError):
    """Something a run needs is not installed or not present: env, repo, weights, data, GPU."""

    exit_code = EXIT_MISSING


class DatasetError(MissingPrerequisiteError):
    """The dataroot is missing, is not nuScenes, or lacks a requested sample token."""


class ResultsError(OnlinemapError):
    """A result file cannot be read or written (corrupt, newer schema, disk full)."""

    exit_code = EXIT_BAD_INPUT


class RunFailedError(OnlinemapError):
    """The model process failed: crashed, raised, or produced invalid predictions."""

    exit_code = EXIT_FAILED


class RunTimeoutError(RunFailedError):
    """The model process exceeded the wall-clock or inactivity timeout and was killed."""

    exit_code = EXIT_TIMEOUT


class RunInterruptedError(RunFailedError):
    """The driver was interrupted (SIGINT/SIGTERM); the model process group was killed."""

    exit_code = EXIT_INTERRUPTED
