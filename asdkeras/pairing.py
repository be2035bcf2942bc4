"""The report's outlier pairs (DCASE 2022 technical report, Tables 2-3)."""

from __future__ import annotations

from asdkeras.data.layout import MACHINE_TYPES
from asdkeras.errors import AsdError

REPORT_OUTLIERS = {
    "ae": {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "slider",
           "gearbox": "fan", "slider": "valve", "valve": "slider"},
    "mobilenet": {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "gearbox",
                  "gearbox": "fan", "slider": "valve", "valve": "slider"},
}
"""Model kind -> target machine -> the machine type whose clips serve as outliers."""


def resolve_outlier(kind: str, machine: str, outlier: str | None) -> str | None:
    """The outlier machine type for ``--outlier NAME|auto|none``; None means no outlier exposure."""
    if outlier in (None, "none"):
        return None
    if outlier == "auto":
        return REPORT_OUTLIERS[kind][machine]
    if outlier not in MACHINE_TYPES:
        raise AsdError(f"unknown outlier machine type '{outlier}'; use auto, none or one of {', '.join(MACHINE_TYPES)}")
    if outlier == machine:
        raise AsdError(f"--outlier {outlier} is the machine being trained; choose another type, auto or none")
    return outlier
