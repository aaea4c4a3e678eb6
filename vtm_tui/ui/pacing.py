"""Sleeping inside long-running thread workers.

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
