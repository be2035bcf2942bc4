"""The report's outlier pairs (DCASE 2022 technical report, Tables 2-3), and a default for other machine types."""

from __future__ import annotations

import logging

from asdkeras.data.layout import MACHINE_TYPES
from asdkeras.errors import AsdError

REPORT_OUTLIERS = {
    "ae": {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "slider",
           "gearbox": "fan", "slider": "valve", "valve": "slider"},
    "mobilenet": {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "gearbox",
                  "gearbox": "fan", "slider": "valve", "valve": "slider"},
}
"""Model kind -> target machine -> the machine type whose clips serve as outliers."""


def resolve_outlier(kind: str, machine: str, outlier: str | None, available=MACHINE_TYPES) -> str | None:
    """The outlier machine type for ``--outlier NAME|auto|none``; None means no outlier exposure.

    ``available``: the machine types of the dataset. ``auto`` takes the report's pairing for the
    seven DCASE 2022 types; for any other type (a pump, a compressor) the first other type in
    ``available`` in alphabetical order, said in a note, or an error asking for ``--outlier``
    when there is none.
    """
    if outlier in (None, "none"):
        return None
    if outlier == "auto":
        if machine in REPORT_OUTLIERS[kind]:
            return REPORT_OUTLIERS[kind][machine]
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
