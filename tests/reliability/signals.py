"""Start a driver under test with the signal dispositions a terminal gives it.

A test session started under ``nohup``, or as a background job of a non-interactive shell, has
SIGHUP or SIGINT ignored, and every child inherits an ignored signal across exec: the driver then
(rightly) keeps running through the very signal the test sends. Tests that send a signal reset
them in the child first, so they test the driver, not how pytest was started.
"""
from __future__ import annotations

import signal


def default_signals() -> None:
    """``preexec_fn`` for drivers that a test signals: SIGINT, SIGTERM and SIGHUP at their defaults."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
