"""What every fit shares, importable without TensorFlow: the base configuration and the clips it draws.

Each kind's configuration (``asdkeras/detectors/<kind>.py``) subclasses :class:`FitConfig`.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from typing import ClassVar

import numpy as np

from asdkeras.data.layout import MACHINE_TYPES, ClipRecord, list_machines, random_subset, scan_split, select
from asdkeras.errors import AsdError
from asdkeras.names import CACHE_DIR, DATA_DIR, DEV_DATA, MODELS_DIR, detector_dir
from asdkeras.splits import partition, split_validation

MIN_HELD_OUT_PER_CONDITION = 5
"""Held-out normals per section and domain that the networks' fits keep at least (up to half of
them), and that a domain needs to measure how the network scores the clips it trained on
(:func:`asdkeras.models.conditions.condition_statistics`)."""
MIN_HELD_OUT = 10
"""Fewer held-out normal clips than this: the threshold is fitted on all training normals instead
(scores of clips the network trained on run low, so it then flags more normals than intended)."""


@dataclass(kw_only=True)
class FitConfig:
    """What every fit shares; each kind's configuration adds its own settings.

    ``validation_fraction`` of the training normals (within every section and domain) is held
    out: validation for the networks, and the clips the threshold is fitted to, its
    ``threshold_quantile`` the share of normals kept as normal. The detector goes to
    ``output_dir``, or ``<models_dir>/<machine>/<kind>``. ``channel``: the channel kept from
    multichannel recordings (None: the channels are averaged), saved with the front-end.
    """

    kind: ClassVar[str]
    held_out_per_condition: ClassVar[int] = 0
    """Held-out normals per section and domain at least (up to half of them)."""
    machine: str
    seed: int = 0
    validation_fraction: float = 0.1
    threshold_quantile: float = 0.9
    data_dir: str = DATA_DIR
    models_dir: str = MODELS_DIR
    cache_dir: str = CACHE_DIR
    subset: str = DEV_DATA
    output_dir: str | None = None
    channel: int | None = None

    @classmethod
    def from_document(cls, document: dict):
        """The configuration saved as ``document`` (its ``config.json``): keys it does not know are
        ignored, nested settings (a dataclass field) and tuples come back as they were."""
        values = {}
        for spec in fields(cls):
            if spec.name not in document:
                continue
            value = document[spec.name]
            default = field_default(spec)
            if isinstance(value, dict) and is_dataclass(default):
                value = type(default)(**value)
            elif isinstance(value, list) and isinstance(default, tuple):
                value = tuple(value)
            values[spec.name] = value
        return cls(**values)

    def folder(self) -> str:
        return self.output_dir or detector_dir(self.models_dir, self.machine, self.kind)

    def normal_cap(self) -> int | None:
        """Most training-normal clips the fit draws at random (None: all)."""
        return None

    def machine_types(self) -> list[str]:
        """The machine types of the dataset (candidates for outlier exposure)."""
        return list_machines(self.data_dir, self.subset) or list(MACHINE_TYPES)

    def normal_split(self) -> tuple[list[ClipRecord], list[ClipRecord]]:
        """The machine's training normals the fit uses: ``(trained on, held out)``.

        Deterministic in the configuration and the data, so the ensemble can find the clips that
        none of its members trained on without each fit writing a list.
        """
        normals = select(scan_split(self.data_dir, self.machine, "train", self.subset), label="normal")
        if not normals:
            raise AsdError(f"{self.data_dir}: no normal training clips for {self.machine}")
        normals = subsample(normals, self.normal_cap(), self.seed)
        held_out = split_validation([(r.section, r.domain) for r in normals], self.validation_fraction, self.seed,
                                    self.held_out_per_condition)
        return partition(normals, held_out)


def field_default(spec: Field):
    """A dataclass field's default value (its factory called, when it has one)."""
    return spec.default_factory() if spec.default_factory is not MISSING else spec.default


def subsample(records: list[ClipRecord], count: int | None, seed: int) -> list[ClipRecord]:
    """``count`` of ``records`` drawn at random for ``seed`` (all of them when None or fewer)."""
    if count is None or count >= len(records):
        return records
    return random_subset(records, count, np.random.default_rng(seed))


def outlier_records(data_dir: str, subset: str, outlier_machine: str | None, count: int, seed: int) -> list[ClipRecord]:
    """Up to ``count`` random training clips of the outlier machine type ([] without outlier exposure)."""
    if not outlier_machine:
        return []
    try:
        outliers = scan_split(data_dir, outlier_machine, "train", subset)
    except AsdError as exc:
        raise AsdError(f"outlier machine '{outlier_machine}' has no training data ({exc}); "
                       f"add it to the dataset or pass --outlier none") from None
    return subsample(outliers, count, seed)
