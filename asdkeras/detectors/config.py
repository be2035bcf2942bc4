"""What every fit shares, importable without TensorFlow: the base configuration and the clips it draws.

Each kind's configuration (``asdkeras/detectors/<kind>.py``) subclasses :class:`FitConfig`.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import ClassVar

import numpy as np

from asdkeras.data.layout import MACHINE_TYPES, ClipRecord, list_machines, random_subset, scan_split, select
from asdkeras.errors import AsdError
from asdkeras.names import CACHE_DIR, DATA_DIR, DEV_DATA, MODELS_DIR, detector_dir
from asdkeras.splits import partition, split_validation

MIN_HELD_OUT_PER_CONDITION = 5
"""Held-out normals per section and domain that the networks' fits keep at least (up to half of
them), and that a domain needs to measure how the network scores the clips it trained on
(:func:`asdkeras.models.condition_statistics.condition_statistics`)."""
MIN_HELD_OUT = 10
"""Fewer held-out normal clips than this: the threshold is fitted on all training normals instead
(scores of clips the network trained on run low, so it then flags more normals than intended)."""


@dataclass(frozen=True)
class Option:
    """How a configuration field is set from ``fit``'s command line: its help and the values it takes.

    The option's default is the field's (never restated here); the command line shows it beside
    ``help`` for every kind that has the field (:func:`asdkeras.detectors.command_options`).

    Attributes
    ----------
    help : str
        What the option sets, lower case, no default, no final full stop.
    type : {int, float, str, "pair"}
        Values it takes; "pair": two numbers written ``MIN,MAX``.
    minimum, maximum : float, optional
        Bounds of a number (included unless ``open_bounds``).
    choices : tuple of str, optional
        The only values it takes.
    none : str, optional
        How the help says a ``None`` default.
    flag : str, optional
        The option's name when it is not ``--<field-name>`` (dashes for underscores).
    """

    help: str
    type: object = str
    minimum: float | None = None
    maximum: float | None = None
    open_bounds: bool = False
    choices: tuple[str, ...] | None = None
    none: str | None = None
    flag: str | None = None

    def __post_init__(self):
        if self.type not in (int, float, str, "pair"):
            raise ValueError(f"an option's type is int, float, str or 'pair'. Received: type={self.type!r}")


OPTION = "option"
"""Metadata key of a configuration field's :class:`Option`."""


def setting(default=MISSING, option: Option | None = None, *, default_factory=MISSING) -> Field:
    """A configuration field set from the command line by ``option`` (None: not a command-line option)."""
    return field(default=default, default_factory=default_factory, metadata={OPTION: option} if option else {})


def command_option(spec: Field) -> Option | None:
    """The command-line :class:`Option` of a configuration field, when it has one."""
    return spec.metadata.get(OPTION)


OUTLIER = Option("outlier machine type for outlier exposure: a type, auto (the report's pairing) or none")
PATIENCE = Option("epochs without validation improvement before stopping", int, minimum=1)
LEARNING_RATE = Option("Adam learning rate", float)
OUTLIER_CLIPS = Option("outlier clips", int, minimum=1, none="as many as the machine's")
TARGET_CLIPS = Option("cap on the machine's training clips", int, minimum=1)
"""Options that several kinds' configurations share (each kind keeps its own default)."""


@dataclass(kw_only=True)
class FitConfig:
    """What every fit shares; each kind's configuration adds its own settings.

    ``validation_fraction`` of the training normals (within every section and domain) is held
    out: validation for the networks, and the clips the threshold is fitted to, its
    ``threshold_quantile`` the share of normals kept as normal, in every operating condition with
    probability ``threshold_confidence`` (None: on average over conditions, the Student-t
    prediction; :func:`asdkeras.models.condition_statistics.prediction_scale`). The detector goes to
    ``output_dir``, or ``<models_dir>/<machine>/<kind>``. ``channel``: the channel kept from
    multichannel recordings (None: the channels are averaged), saved with the front-end.
    ``calibration``: normal clips of operating conditions added after the fit by ``python cli.py
    calibrate`` (:mod:`asdkeras.calibration`), each ``{"path", "section", "domain"}``; they join the
    training normals of :meth:`normal_split`.
    """

    kind: ClassVar[str]
    held_out_per_condition: ClassVar[int] = 0
    """Held-out normals per section and domain at least (up to half of them)."""
    calibration_trains: ClassVar[bool] = False
    """Whether calibration clips join the clips the model is fitted on (a GMM, refitted cheaply) or
    the held-out ones (a network, kept as trained: they measure how it scores the new condition)."""
    machine: str
    seed: int = 0
    validation_fraction: float = 0.1
    threshold_quantile: float = setting(0.9, Option(
        "share of new normal clips kept as normal by the threshold (0.9: ~10 % false alarms)",
        float, minimum=0, maximum=1, open_bounds=True))
    threshold_confidence: float | None = setting(0.9, Option(
        "probability that each operating condition keeps at least the quantile's share of its new normals as "
        "normal (a tolerance threshold: a condition known from few clips gets a margin, so it flags fewer than "
        "the quantile's share on average; a gmm fitted with one --pooling-decay has one level for all conditions "
        "and ignores it)", float, minimum=0, maximum=1, open_bounds=True))
    data_dir: str = DATA_DIR
    models_dir: str = MODELS_DIR
    cache_dir: str = CACHE_DIR
    subset: str = DEV_DATA
    output_dir: str | None = None
    channel: int | None = None
    calibration: tuple = ()

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
        none of its members trained on without each fit writing a list. The ``calibration`` clips
        come last, among those trained on or those held out as :attr:`calibration_trains` says.
        """
        normals = select(scan_split(self.data_dir, self.machine, "train", self.subset), label="normal")
        if not normals:
            raise AsdError(f"{self.data_dir}: no normal training clips for {self.machine}")
        normals = subsample(normals, self.normal_cap(), self.seed)
        held_out = split_validation([(r.section, r.domain) for r in normals], self.validation_fraction, self.seed,
                                    self.held_out_per_condition)
        trained, held_out = partition(normals, held_out)
        added = self.calibration_records()
        return (trained + added, held_out) if self.calibration_trains else (trained, held_out + added)

    def calibration_records(self) -> list[ClipRecord]:
        """The ``calibration`` clips as training-normal records of their section and domain."""
        return [ClipRecord(path=clip["path"], machine=self.machine, split="train", section=clip["section"], index=index,
                           domain=clip["domain"], label="normal") for index, clip in enumerate(self.calibration)]


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
