"""Outlier exposure's choice of outlier machine type: a kind's pairing (its module holds the report's), or a default."""

from __future__ import annotations

import logging
from typing import Mapping

from asdkeras.data.layout import MACHINE_TYPES
from asdkeras.errors import AsdError


def resolve_outlier(pairing: Mapping[str, str], machine: str, outlier: str | None, available=MACHINE_TYPES) -> str | None:
    """The outlier machine type for ``--outlier NAME|auto|none``; None means no outlier exposure.

    ``pairing``: the kind's machine type -> outlier type (the report's, Tables 2-3, for the seven
    DCASE 2022 types). ``available``: the machine types of the dataset. ``auto`` takes the
    pairing; for any other type (a pump, a compressor) the first other type in ``available`` in
    alphabetical order, said in a note, or an error asking for ``--outlier`` when there is none.
    """
    if outlier in (None, "none"):
        return None
    if outlier == "auto":
        if machine in pairing:
            return pairing[machine]
        others = sorted(m for m in available if m != machine)
        if not others:
            raise AsdError(f"--outlier auto: the report pairs only the seven DCASE 2022 types, and the dataset holds "
                           f"no other machine type than {machine}; pass --outlier TYPE or --outlier none")
        logging.getLogger("asdkeras").info(
            f"--outlier auto: {machine} is not in the report's pairing; using {others[0]}, the first other machine "
            f"type of the dataset in alphabetical order (pass --outlier to choose)")
        return others[0]
    if outlier == machine:
        raise AsdError(f"--outlier {outlier} is the machine being trained; choose another type, auto or none")
    if outlier not in available:
        raise AsdError(f"unknown outlier machine type '{outlier}'; use auto, none or one of {', '.join(available)}")
    return outlier
