"""Held-out draws of training clips: within every section and domain, reproducible for a seed."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def split_validation(keys: Sequence[tuple], fraction: float, seed: int, minimum: int = 0) -> np.ndarray:
    """Boolean mask of validation items, drawn at random within every group key (section, domain).

    Each group gives ``round(fraction * size)`` items, at least one when it has 5 or more, and
    at least ``minimum`` up to half the group, so the validation set spans all sections and both
    domains. A group's draw is the start of one random order, so a larger ``minimum`` holds out
    a superset of the clips a smaller one does.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(keys), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        order = np.asarray(members)[rng.permutation(len(members))]
        take = int(round(fraction * len(members)))
        if take == 0 and fraction > 0 and len(members) >= 5:
            take = 1
        if fraction > 0:
            take = max(take, min(minimum, len(members) // 2))
        mask[order[:min(take, len(members) - 1)]] = True
    return mask


def partition(items: Sequence, validation_mask: np.ndarray) -> tuple[list, list]:
    """Split items into (training, validation) by a mask from :func:`split_validation`."""
    return ([x for x, m in zip(items, validation_mask) if not m], [x for x, m in zip(items, validation_mask) if m])
