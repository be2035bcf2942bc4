"""Run a saved detector over a test split: scores, decisions, official CSVs and metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from asdkeras.data.layout import ClipRecord, scan_split, sections, select
from asdkeras.errors import AsdError
from asdkeras.features import ImageConfig, LogMelConfig
from asdkeras.metrics import (SectionResult, format_table, metrics_document, official_score, section_metrics,
                              write_metrics_json, write_result_csvs)
from asdkeras.pipeline import Progress, no_progress, clip_vectors_dataset, image_cache, image_dataset, logmel_cache
from asdkeras.scoring import autoencoder_clip_scores, decide, outlier_probability_from_logits
from asdkeras.store import MODEL_FILE, read_detector_json


def load_keras_model(folder: str):
    """Load ``model.keras`` of a detector folder (custom layers registered by importing their modules)."""
    import keras

    import asdkeras.models.autoencoder  # noqa: F401  (registers ReconstructionError)

    path = os.path.join(folder, MODEL_FILE)
    if not os.path.isfile(path):
        raise AsdError(f"{folder}: no {MODEL_FILE}; train the detector again with 'python cli.py fit'")
    return keras.saving.load_model(path, compile=False)


def score_clips(folder: str, paths: list[str], cache_dir: str, progress: Progress = no_progress) -> tuple[np.ndarray, dict]:
    """Anomaly scores (higher = more anomalous) of audio files under a saved detector, and its summary."""
    detector = read_detector_json(folder)
    model = load_keras_model(folder)
    if detector["kind"] == "ae":
        config = LogMelConfig(**detector["features"])
        cache_paths = logmel_cache(cache_dir, config).ensure(paths, progress)
        return autoencoder_clip_scores(model, clip_vectors_dataset(cache_paths, config)), detector
    if detector["kind"] == "mobilenet":
        from asdkeras.models.mobilenet import logit_model

        config = ImageConfig(**detector["image"])
        cache_paths = image_cache(cache_dir, config).ensure(paths, progress)
        logits = logit_model(model).predict(image_dataset(cache_paths, config, batch_size=32), verbose=0)
        return outlier_probability_from_logits(logits), detector
    raise AsdError(f"{folder}: unknown detector kind '{detector['kind']}'")


@dataclass
class Evaluation:
    """What a test run produced: per-section metrics (empty without labels) and the files written."""

    machine: str
    model: str
    results: list[SectionResult]
    files: list[str]
    threshold: float

    @property
    def official_score(self) -> float | None:
        return official_score(self.results) if self.results else None

    def table(self) -> str:
        return format_table(self.machine, self.model, self.results) if self.results else \
            f"{self.machine} / {self.model}: no labels, scores and decisions written only"


def _labelled(records: list[ClipRecord]) -> bool:
    return all(r.label is not None and r.domain is not None for r in records)


def evaluate(folder: str, machine: str, model_name: str, data_dir: str, result_dir: str, cache_dir: str,
             subset: str = "dev_data", progress: Progress = no_progress,
             records: list[ClipRecord] | None = None) -> Evaluation:
    """Score every test clip of ``machine``, write the official CSVs per section and, for labelled
    data, ``metrics_<model>_<machine>.json``."""
    records = records if records is not None else scan_split(data_dir, machine, "test", subset)
    scores, detector = score_clips(folder, [r.path for r in records], cache_dir, progress)
    decisions = decide(scores, detector["threshold"])
    files, results = [], []
    by_path = {r.path: i for i, r in enumerate(records)}
    for section in sections(records):
        members = select(records, section=section)
        idx = np.array([by_path[r.path] for r in members])
        files += write_result_csvs(result_dir, machine, section, [r.filename for r in members],
                                   scores[idx], decisions[idx])
        if _labelled(members):
            results.append(section_metrics(section, [r.is_anomaly for r in members], scores[idx],
                                           [r.domain for r in members], decisions[idx]))
    if results:
        files.append(write_metrics_json(result_dir, metrics_document(machine, model_name, results, detector["threshold"])))
    return Evaluation(machine, model_name, results, files, detector["threshold"])
