"""One detector type: a scoring model, its feature front-end, its threshold and what it was fitted on.

A detector folder (``<models-dir>/<machine>/<kind>/``) holds

* ``model.keras``: the **scoring model**, features of a batch of clips -> one score per clip
  (higher = more anomalous). The clip score is part of the graph (the autoencoder's mean
  vector error, MobileNetV2's negative logit), so Python scoring, TFLite export and ensembles
  run the same computation;
* ``detector.json``: written and read only here (``format`` = :data:`FORMAT_VERSION`): kind,
  machine, front-end settings (sample rate, clip length, feature parameters), score units and
  direction, the threshold with the rule that set it (and the other rules' values), the score
  statistics of held-out training normals, and facts of the fit;
* ``config.json`` and ``history.json``: the training configuration and per-epoch losses;
* a sub-folder per **variant** (:data:`~asdkeras.names.VARIANTS`), each a detector folder of its
  own: ``int8/`` (MobileNetV2, and an ensemble holding it) is the quantisation-aware twin from
  which the integer TFLite files are converted (:mod:`asdkeras.models.quantise`).

Every kind is the same type: new kinds plug in with a scoring model and a front-end, no branch.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from asdkeras.atomic import write_json
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.frontend import frontend_from_settings
from asdkeras.names import (DETECTOR_FILE, MODEL_FILE, SPLIT_FILE, detector_dir,  # noqa: F401 (re-exported)
                            saved_variants, variant_dir)
from asdkeras.progress import Progress, no_progress
from asdkeras.scoring import decide

FORMAT_VERSION = 2
"""Version of ``detector.json``. 1 (no ``format`` key): before the score was in the graph."""

SCORE_DIRECTION = "higher is more anomalous"


@dataclass
class Detector:
    """A fitted detector.

    Attributes
    ----------
    kind : str
        "ae", "mobilenet", ...: which trainer made it.
    machine : str
        Machine type it was fitted for.
    frontend : LogMelFrontend or ImageFrontend
        Features its scoring model reads.
    model : keras.Model
        Features ``(batch, *frontend.input_shape)`` -> clip scores ``(batch,)``.
    score_units : str
        What a score is (e.g. "mean squared reconstruction error of normalised log-mel vectors").
    thresholds : dict
        Rule name -> record from :mod:`asdkeras.scoring` (``value``, ``description``, ...).
    threshold_rule : str
        The key of ``thresholds`` that decides.
    normal_scores : dict
        :func:`asdkeras.scoring.score_statistics` of held-out training-normal clip scores.
    info : dict
        Facts of the fit (clip counts, outlier type, epochs, seconds, ...), shown to the user.
    variants : dict
        Variant name (:data:`~asdkeras.names.VARIANTS`) -> Detector: saved with it, and loaded
        with it on request (``Detector.load(folder, variants=True)``).
    """

    kind: str
    machine: str
    frontend: object
    model: object
    score_units: str
    thresholds: dict
    threshold_rule: str
    normal_scores: dict
    info: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.threshold_rule not in self.thresholds:
            raise AsdError(f"threshold rule '{self.threshold_rule}' is not one of this detector's: "
                           f"{', '.join(self.thresholds)}")

    @property
    def threshold(self) -> float:
        """Decision threshold in score units: a clip scoring above it is an anomaly."""
        return float(self.thresholds[self.threshold_rule]["value"])

    @property
    def intended_flag_share(self) -> float | None:
        """Share of normal clips the threshold is meant to flag (0.1 for the 0.9 quantile), or
        None for a rule that does not aim at a share (the report's eq. 2)."""
        quantile = self.thresholds[self.threshold_rule].get("quantile")
        return None if quantile is None else 1.0 - float(quantile)

    def score_features(self, features) -> np.ndarray:
        """Clip scores (float64) of a dataset of feature batches, or of one array of features."""
        from asdkeras.models.inference import predict

        return np.asarray(predict(self.model, features), dtype=np.float64).reshape(-1)

    def score_files(self, paths: list[str], cache_dir: str, progress: Progress = no_progress,
                    skipped: SkippedFiles | None = None, long_clips: str = "crop") -> np.ndarray:
        """Clip scores of audio files, features computed once into ``cache_dir`` and reused.

        An unreadable file raises its one-line error, or, given ``skipped``, is recorded there and
        gets the score NaN (the others are scored all the same). ``long_clips``: files longer than
        the clip length are cropped ("crop"), or scored in overlapping windows aggregated by
        "max" or "mean" (see :func:`asdkeras.audio.load_windows`).
        """
        from asdkeras.audio import aggregate_windows, is_long, load_windows

        skipped = SkippedFiles.or_strict(skipped)
        scores = np.full(len(paths), np.nan)
        windowed = {i for i, p in enumerate(paths)
                    if long_clips != "crop" and is_long(p, self.frontend.clip_samples)}
        cached = [p for i, p in enumerate(paths) if i not in windowed]
        cache_paths = self.frontend.cache(cache_dir).ensure(cached, progress, skipped)
        if cache_paths:
            readable = np.array([i not in windowed and p not in skipped for i, p in enumerate(paths)])
            scores[readable] = self.score_features(self.frontend.dataset(cache_paths))
        for i in sorted(windowed):
            try:
                windows = load_windows(paths[i], self.frontend.channel, clip_samples=self.frontend.clip_samples)
            except AsdError as exc:
                skipped.add(paths[i], str(exc))
                continue
            scores[i] = aggregate_windows(self.score_waveforms(windows), long_clips)
        return scores

    def score_waveforms(self, waveforms: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Clip scores of decoded clips ``(clips, clip_samples)`` float32 at the front-end's rate (no cache)."""
        import tensorflow as tf

        data = (tf.data.Dataset.from_tensor_slices(np.asarray(waveforms, np.float32)).batch(batch_size)
                .map(self.frontend.from_waveforms))
        return self.score_features(data)

    def decide(self, scores) -> np.ndarray:
        """1 (anomaly) where a score exceeds :attr:`threshold`, else 0."""
        return decide(scores, self.threshold)

    def describe(self) -> dict:
        """The ``detector.json`` document."""
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "machine": self.machine,
            "frontend": self.frontend.settings(),
            "input_shape": list(self.frontend.input_shape),
            "score_units": self.score_units,
            "score_direction": SCORE_DIRECTION,
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "thresholds": self.thresholds,
            "normal_scores": self.normal_scores,
            **self.info,
        }

    def save(self, folder: str, extra: dict | None = None, variant_extra: dict[str, dict] | None = None) -> str:
        """Write the folder, its variants included, atomically (a failure leaves a previous detector untouched).

        ``extra`` maps further JSON file names to documents (``config.json``, ``history.json``).
        Each variant is saved in its sub-folder with the ``extra`` documents, updated by
        ``variant_extra[name]`` (its own ``history.json``).
        """
        def write(tmp_dir: str) -> None:
            self._write(tmp_dir, extra)
            for name, variant in self.variants.items():
                os.makedirs(variant_dir(tmp_dir, name))
                variant._write(variant_dir(tmp_dir, name), {**(extra or {}), **(variant_extra or {}).get(name, {})})

        return save_atomically(folder, write)

    def _write(self, folder: str, extra: dict | None) -> None:
        self.model.save(os.path.join(folder, MODEL_FILE))
        for name, document in {DETECTOR_FILE: self.describe(), **(extra or {})}.items():
            write_json(os.path.join(folder, name), document)

    @classmethod
    def load(cls, folder: str, variants: bool = False) -> "Detector":
        """Load a detector folder, and its saved variants when ``variants``; a missing, older or
        damaged one is a one-line :class:`AsdError`."""
        document = read_detector_json(folder)
        return cls(kind=document["kind"], machine=document["machine"],
                   frontend=frontend_from_settings(document["frontend"]), model=load_scoring_model(folder),
                   score_units=document["score_units"], thresholds=document["thresholds"],
                   threshold_rule=document["threshold_rule"], normal_scores=document["normal_scores"],
                   info={k: v for k, v in document.items() if k not in _DESCRIBED},
                   variants={name: cls.load(sub) for name, sub in saved_variants(folder).items()} if variants else {})


_DESCRIBED = {"format", "kind", "machine", "frontend", "input_shape", "score_units", "score_direction", "threshold",
              "threshold_rule", "thresholds", "normal_scores"}


def read_detector_json(folder: str) -> dict:
    """The ``detector.json`` of a folder, checked for its format version."""
    import json

    path = os.path.join(folder, DETECTOR_FILE)
    if not os.path.isfile(path):
        raise AsdError(f"{folder}: no trained detector there (missing {DETECTOR_FILE}); "
                       f"train one first with 'python cli.py fit'")
    try:
        with open(path) as handle:
            document = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AsdError(f"{path}: damaged ({exc}); re-fit the detector with 'python cli.py fit'") from None
    version = document.get("format", 1) if isinstance(document, dict) else None
    if version != FORMAT_VERSION:
        machine = document.get("machine", "<machine>") if isinstance(document, dict) else "<machine>"
        kind = document.get("kind", "<model>") if isinstance(document, dict) else "<model>"
        raise AsdError(f"{folder}: written by {'an older' if (version or 0) < FORMAT_VERSION else 'a newer'} asdkeras "
                       f"(detector format {version}, this one reads {FORMAT_VERSION}); re-fit it with "
                       f"'python cli.py fit --machine {machine} --model {kind}'")
    return document


def load_scoring_model(folder: str):
    """``model.keras`` of a detector folder, with the package's custom layers registered."""
    import keras

    from asdkeras import detectors

    detectors.load_layers()  # every kind's Keras layers, registered for loading

    path = os.path.join(folder, MODEL_FILE)
    if not os.path.isfile(path):
        raise AsdError(f"{folder}: no {MODEL_FILE}; train the detector again with 'python cli.py fit'")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AsdError(f"{path}: cannot be loaded ({reason}); re-fit the detector with 'python cli.py fit'") from None


def save_atomically(final_dir: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_dir)`` to fill a fresh folder, then swap it into ``final_dir``.

    A failure while writing leaves any previous ``final_dir`` untouched.
    """
    parent = os.path.dirname(os.path.abspath(final_dir))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = f"{final_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    try:
        write(tmp_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    old_dir = f"{final_dir}.old-{os.getpid()}"
    if os.path.exists(final_dir):
        os.replace(final_dir, old_dir)
    os.replace(tmp_dir, final_dir)
    shutil.rmtree(old_dir, ignore_errors=True)
    return final_dir
