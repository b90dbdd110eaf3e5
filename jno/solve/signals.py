"""Ctrl-C and SIGTERM during a solve: a flag checked between chunks.

A stop never falls between a chunk's new state and the recording of its draws: the driver
raises the signal's exception (``KeyboardInterrupt``, :class:`Preempted`) only after a chunk's
records are kept, so an interrupted solve keeps every draw and history row it made.
"""

from __future__ import annotations

import signal
import threading


class Preempted(BaseException):
    """SIGTERM arrived during a checkpointed solve (a scheduler's preemption)."""


class StopSignals:
    """Turn Ctrl-C (and SIGTERM, with ``preempt``) into a flag checked between chunks, so a
    stop never falls between a chunk's new state and the recording of its draws. A second
    Ctrl-C interrupts at once. Only in the main thread (signals cannot be caught elsewhere)."""

    def __init__(self, preempt: bool):
        self.preempt = preempt
        self.received = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        self._old[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)
        if self.preempt:
            self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def raise_if_stopped(self) -> None:
        if self.received == signal.SIGTERM:
            raise Preempted
        if self.received == signal.SIGINT:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        return False
