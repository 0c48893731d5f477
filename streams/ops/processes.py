"""Processes we start and stop: the one way to stop a child by its PID, and the one way a
process turns Ctrl-C and SIGTERM into a stop request."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: threading.Event | asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop``. An asyncio.Event is set from its running loop (call
    this inside it); a threading.Event from the main thread's signal handler."""
    if isinstance(stop, asyncio.Event):
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    else:
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda *_: stop.set())


def terminate(proc: subprocess.Popen | None) -> None:
    """Ask a child to stop (SIGTERM), if it still runs; wait for it with ``wait_or_kill``."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)


def wait_or_kill(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait until the monotonic ``deadline`` for a child to exit; SIGKILL it if it has not.
    Returns True when it stopped by itself."""
    try:
        proc.wait(max(0.1, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def stop_process(proc: subprocess.Popen, grace_s: float) -> int:
    """SIGTERM, up to ``grace_s`` to finish, then SIGKILL. Returns the exit status."""
    terminate(proc)
    wait_or_kill(proc, time.monotonic() + grace_s)
    return proc.returncode
