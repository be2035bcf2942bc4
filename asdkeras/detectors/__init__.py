"""The detector kinds: one module each, and the registry that everything else consults.

A kind's module (``asdkeras/detectors/<kind>.py``) is the single home of its facts: its
configuration dataclass (each field that ``fit`` sets from the command line declared with its
:class:`asdkeras.detectors.config.Option`: :func:`command_options`) and trainer (with its outlier
pairing, when it has outlier exposure),
the Keras layers its saved models need, the tensor names that stay float in int8 export, its
demo settings and its title and colour in the report. It ends with
``register(DetectorKind(...))``. ``fit``, ``test``, ``export``, the ensemble, the report and the
command line ask this registry and branch on no kind's name, so a new kind is one new module
and one line in :data:`BUILTIN` (or a :func:`register` call from anywhere, as the tests do).

Importing a kind's module does not import TensorFlow (its trainer does, when it runs), so the
command line can list the kinds and their defaults at once.

Examples
--------
>>> from asdkeras import detectors
>>> sorted(detectors.model_kinds())
['ae', 'gmm', 'mobilenet']
>>> detectors.get("ae").title
'AE'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable

from asdkeras.errors import AsdError
from asdkeras.names import variant_result_name

BUILTIN = {"ae": "asdkeras.detectors.autoencoder", "mobilenet": "asdkeras.detectors.mobilenet",
           "gmm": "asdkeras.detectors.gmm", "ensemble": "asdkeras.detectors.ensemble"}
"""Kind name -> the module that registers it, in the order the command line lists them."""

DEFAULT_KIND = "ae"
"""The kind ``fit`` and ``test`` take when ``--model`` is not given (the report's first system)."""

SHARED_LAYER_MODULES = ("asdkeras.models.layers", "asdkeras.models.gmm")
"""Modules of the Keras layers any kind's scoring model may hold: clip scores, and the pooling and
mixture layers with which :mod:`asdkeras.models.conditions` judges a score in its operating condition."""


@dataclass(frozen=True)
class DetectorKind:
    """Everything the rest of the project needs to know about one kind of detector.

    Attributes
    ----------
    name : str
        The ``--model`` value and the folder name under ``<models-dir>/<machine>/``.
    title, colour : str
        The report's name for it and its curves' colour (a matplotlib colour).
    description : str
        What it is, in a few words (``--model``'s help).
    config : type, optional
        Its configuration dataclass (a :class:`asdkeras.detectors.config.FitConfig`); None for a
        kind built from fitted detectors rather than from audio (the ensemble).
    fit : callable, optional
        ``fit(config, progress, verbose, skipped) -> Detector``: train, threshold and save.
    calibrate : callable, optional
        ``calibrate(folder, config, progress, skipped) -> Detector``: the detector saved in
        ``folder`` judged again with the calibration clips of ``config``, its model kept as trained
        (``python cli.py calibrate``, :mod:`asdkeras.calibration`); None: ``fit`` again with that
        configuration (a kind that refits in seconds).
    layer_modules : tuple of str
        Modules to import so that its saved models load (they register its Keras layers).
    float_tail : tuple of str
        Tensor-name parts kept float in int8 TFLite models (its score tail; see
        :data:`asdkeras.conversion.SHARED_FLOAT_TAIL`). Forgetting one quantises that stage.
    demo_options : callable
        ``demo_options(settings) -> dict``: its configuration options in ``cli.py demo`` from the
        demo's settings (a dict of the demo command's options).
    variant_titles : dict
        Variant name (:data:`asdkeras.names.VARIANTS`) -> (title, colour) of that variant's
        results, for the variants the kind saves.
    tie_rank : int
        Its place among the ensemble's single-member candidates when the pseudo-anomaly battery
        cannot tell them apart (:func:`asdkeras.battery.choose` takes the first tied candidate;
        lower ranks first, every member before the fusions; equal ranks in registry order).
    """

    name: str
    title: str
    colour: str
    description: str = ""
    config: type | None = None
    fit: Callable | None = None
    calibrate: Callable | None = None
    layer_modules: tuple[str, ...] = ()
    float_tail: tuple[str, ...] = ()
    demo_options: Callable[[dict], dict] = field(default=lambda settings: {})
    variant_titles: dict[str, tuple[str, str]] = field(default_factory=dict)
    tie_rank: int = 100

    def __post_init__(self):
        if (self.config is None) != (self.fit is None):
            raise ValueError(f"kind {self.name!r}: give both config and fit, or neither. "
                             f"Received: config={self.config!r}, fit={self.fit!r}")

    @property
    def trained_from_audio(self) -> bool:
        return self.fit is not None

    def option_names(self) -> set[str]:
        """Its configuration's field names (the command-line options it takes)."""
        return {f.name for f in fields(self.config)} if self.config else set()


_REGISTRY: dict[str, DetectorKind] = {}


def register(kind: DetectorKind) -> DetectorKind:
    """Add (or replace) ``kind`` in the registry; returns it, so a module can keep it as ``KIND``."""
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind registered at run time (tests); the built-in ones come back on the next lookup."""
    _REGISTRY.pop(name, None)


def kinds() -> dict[str, DetectorKind]:
    """Every registered kind by name: the built-in ones (in :data:`BUILTIN` order), then any others."""
    for name, module in BUILTIN.items():
        if name not in _REGISTRY:
            importlib.import_module(module)
    order = list(BUILTIN) + [n for n in _REGISTRY if n not in BUILTIN]
    return {n: _REGISTRY[n] for n in order if n in _REGISTRY}


def get(name: str) -> DetectorKind:
    """The kind called ``name``; a one-line error naming the known kinds otherwise."""
    known = kinds()
    if name not in known:
        raise AsdError(f"unknown model kind '{name}'; use one of {', '.join(known)}")
    return known[name]


def describe_kinds() -> str:
    """``"ae: <description>; mobilenet: ..."`` for every kind (``--model``'s help)."""
    return "; ".join(f"{name}: {kind.description or kind.title}" for name, kind in kinds().items())


def model_kinds() -> tuple[str, ...]:
    """Names of the kinds trained from audio (``--model all`` fits these, then the ensembles)."""
    return tuple(n for n, k in kinds().items() if k.trained_from_audio)


def by_tie_rank(names: Iterable[str]) -> list[str]:
    """``names`` of kinds in the order a battery tie goes (:attr:`DetectorKind.tie_rank`, then registry order)."""
    known = kinds()
    registry = list(known)
    return sorted(names, key=lambda n: (known[n].tie_rank, registry.index(n)))


def detector_kinds() -> tuple[str, ...]:
    """Names of every kind of saved detector."""
    return tuple(kinds())


def float_tail() -> tuple[str, ...]:
    """Every kind's float tensor-name parts."""
    return tuple(dict.fromkeys(part for k in kinds().values() for part in k.float_tail))


def load_layers() -> None:
    """Import the modules that register the Keras layers of every kind's saved models."""
    for module in SHARED_LAYER_MODULES + tuple(m for k in kinds().values() for m in k.layer_modules):
        importlib.import_module(module)


def result_title(name: str) -> tuple[str, str | None]:
    """Title and colour of the results called ``name``: a kind's, or one of its variants'; else the name itself."""
    known = kinds()
    if name in known:
        return known[name].title, known[name].colour
    variants = {variant_result_name(n, v): titled for n, k in known.items() for v, titled in k.variant_titles.items()}
    return variants.get(name, (name, None))


def kinds_taking(option: str) -> list[str]:
    """Names of the kinds whose configuration has the field ``option``."""
    return [n for n, k in kinds().items() if option in k.option_names()]


@dataclass(frozen=True)
class CommandOption:
    """One option of ``fit``'s command line that sets a configuration field of one or more kinds.

    ``option``: the first such kind's :class:`asdkeras.detectors.config.Option` (type, bounds,
    choices); ``help``: its text for every kind that takes it, with their defaults.
    """

    name: str
    flag: str
    option: object
    help: str


def command_options() -> list[CommandOption]:
    """``fit``'s configuration options: each field that a kind's configuration marks with an
    :class:`asdkeras.detectors.config.Option`, once, in registry and field order.

    The help reads ``"<kinds>: <text> [<default>]."``, the defaults from the configurations (so a
    default is written in one place), one such sentence per distinct text when kinds describe the
    same field differently (``--batch-size``: vectors for the AE, images for MobileNetV2).
    """
    from asdkeras.detectors.config import command_option, field_default

    declared: dict[str, list[tuple[str, object, object]]] = {}  # field -> (kind, its Option, its default)
    for kind_name, kind in kinds().items():
        for spec in fields(kind.config) if kind.config else ():
            if command_option(spec) is not None:
                declared.setdefault(spec.name, []).append((kind_name, command_option(spec), field_default(spec)))
    options = []
    for name, takers in declared.items():
        texts: dict[str, dict[str, object]] = {}  # help text -> {kind: default}
        for kind_name, option, default in takers:
            texts.setdefault(option.help, {})[kind_name] = default
        first = takers[0][1]
        sentences = [f"{', '.join(defaults)}: {text} [{_shown_defaults(defaults, first.none)}]."
                     for text, defaults in texts.items()]
        options.append(CommandOption(name, first.flag or name.replace("_", "-"), first, " ".join(sentences)))
    return options


def _shown_defaults(defaults: dict[str, object], none: str | None) -> str:
    """``"30"`` when the kinds share a default, else ``"ae 30; mobilenet 5"``."""
    shown = {kind: none if value is None else ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
             for kind, value in defaults.items()}
    return (next(iter(shown.values())) if len(set(shown.values())) == 1
            else "; ".join(f"{kind} {value}" for kind, value in shown.items()))


def defaults_of(option: str) -> dict[str, object]:
    """Kind name -> its configuration's default for ``option`` (the kinds that take it)."""
    from asdkeras.detectors.config import field_default

    return {name: field_default(next(f for f in fields(kind.config) if f.name == option))
            for name, kind in kinds().items() if option in kind.option_names()}
