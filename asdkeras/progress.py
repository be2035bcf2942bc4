"""The progress-report callable every long step takes (the command line passes a click bar)."""

from __future__ import annotations

from typing import Callable, Iterable

Progress = Callable[[Iterable, int], Iterable]
"""``progress(iterable, total)`` yields the items of ``iterable`` (of ``total`` items), reporting as it goes."""


def no_progress(iterable, total):
    """The silent :data:`Progress`."""
    return iterable
