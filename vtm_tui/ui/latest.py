"""Stale answers, dropped: a worker's answer counts only if nothing newer was asked for since.

A tab asks (experiments, runs, a prediction, a log to follow) and the answer arrives later, from
a worker thread; meanwhile the user may have asked again. Each request takes a ticket; the answer
carries it back and is shown only if its ticket is still the newest.
"""
from __future__ import annotations


class Latest:
    """Tickets for one kind of request; only the newest is current."""

    def __init__(self) -> None:
        self.ticket = 0

    def new(self) -> int:
        """The ticket of a new request; every earlier one becomes stale."""
        self.ticket += 1
        return self.ticket

    def is_current(self, ticket: int) -> bool:
        return ticket == self.ticket

    def drop(self) -> None:
        """Nothing asked for so far counts any more (a cancel)."""
        self.ticket += 1
