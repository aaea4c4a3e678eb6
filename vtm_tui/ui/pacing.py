"""Sleeping and waiting inside long-running thread workers.

Thread workers run in the event loop's executor, and the app waits for those threads when it
exits; so a polling loop sleeps in short slices and stops as soon as its worker is cancelled.
"""
from __future__ import annotations

import threading
import time

from textual.worker import get_current_worker

SLICE = 0.05


def pause(seconds: float, wake: threading.Event | None = None) -> bool:
    """Sleep up to `seconds` (less when `wake` is set); False once the worker is cancelled."""
    worker = get_current_worker()
    remaining = seconds
    while remaining > 0 and not worker.is_cancelled:
        step = min(SLICE, remaining)
        if wake is not None:
            if wake.wait(step):
                break  # the caller clears it once it has acted on the wake-up
        else:
            time.sleep(step)
        remaining -= step
    return not worker.is_cancelled


class Abandoned(Exception):
    """The app closed while a call was still running."""


def wait_detached(call, *args, **kwargs):
    """Run a long call that cannot be interrupted (starting a server: up to minutes) in a daemon
    thread, and wait for it from this worker. The app waits for its worker threads when it
    exits, so calling it here directly would hold up quitting; this gives up the wait instead
    (Abandoned) and leaves the call to finish, or to end with the process."""
    done, box = threading.Event(), {}

    def run() -> None:
        try:
            box["value"] = call(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="vtm-serving-call").start()
    while not done.is_set():
        if not pause(0.2, done):
            raise Abandoned
    if "error" in box:
        raise box["error"]
    return box["value"]
