"""Training per machine type: the outlier-exposure autoencoder, saved as a detector folder."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from asdkeras.audio import CLIP_SAMPLES
from asdkeras.data.layout import ClipRecord, scan_split, select
from asdkeras.errors import AsdError
from asdkeras.features import LogMelConfig
from asdkeras.pairing import resolve_outlier
from asdkeras.pipeline import (Progress, _no_progress, logmel_cache, mixed_training_dataset, split_validation,
                               vector_statistics, clip_vectors_dataset)
from asdkeras.scoring import autoencoder_clip_scores, gamma_threshold
from asdkeras.store import MODEL_FILE, DETECTOR_FILE, detector_dir, save_atomically, write_json


@dataclass
class AutoencoderConfig:
    """Everything an autoencoder fit depends on; saved as ``config.json`` beside the model.

    Counts are clips; ``target_clips`` caps the machine's training clips (the report: 3000),
    ``outlier_clips`` the outlier machine's (None: as many as the machine's, i.e. 1:1).
    ``margin`` is the hinge's m in normalised squared-error units.
    """

    machine: str
    outlier: str | None = "auto"
    loss: str = "oe"
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 5
    seed: int = 0
    validation_fraction: float = 0.1
    target_clips: int | None = 3000
    outlier_clips: int | None = None
    margin: float = 1.0
    threshold_quantile: float = 0.9
    data_dir: str = "data"
    models_dir: str = "saved_models"
    cache_dir: str = "cache"
    subset: str = "dev_data"
    output_dir: str | None = None
    features: LogMelConfig = field(default_factory=LogMelConfig)

    def resolved_outlier(self) -> str | None:
        if self.loss == "mse":
            if self.outlier not in (None, "none", "auto"):
                raise AsdError(f"--loss mse trains the clear AE on normals only; drop --outlier {self.outlier} "
                               f"or choose --loss oe / oe-hinge")
            return None
        return resolve_outlier("ae", self.machine, self.outlier)

    def folder(self) -> str:
        return self.output_dir or detector_dir(self.models_dir, self.machine, "ae")


def _subsample(records: list[ClipRecord], count: int | None, seed: int) -> list[ClipRecord]:
    if count is None or count >= len(records):
        return records
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(records), size=count, replace=False))
    return [records[i] for i in keep]


def training_records(config: AutoencoderConfig) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """The machine's training normals and the outlier clips, after the configured caps."""
    normals = select(scan_split(config.data_dir, config.machine, "train", config.subset), label="normal")
    if not normals:
        raise AsdError(f"{config.data_dir}: no normal training clips for {config.machine}")
    normals = _subsample(normals, config.target_clips, config.seed)
    outlier_machine = config.resolved_outlier()
    outliers: list[ClipRecord] = []
    if outlier_machine:
        try:
            outliers = scan_split(config.data_dir, outlier_machine, "train", config.subset)
        except AsdError as exc:
            raise AsdError(f"outlier machine '{outlier_machine}' has no training data ({exc}); "
                           f"add it to the dataset or pass --outlier none") from None
        outliers = _subsample(outliers, config.outlier_clips or len(normals), config.seed + 1)
    return normals, outliers


def fit_autoencoder(config: AutoencoderConfig, progress: Progress = _no_progress, verbose: int = 0) -> dict:
    """Train, threshold and save one autoencoder; returns the summary written to ``detector.json``."""
    import keras

    from asdkeras.models.autoencoder import autoencoder_loss, build_autoencoder

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    normals, outliers = training_records(config)
    cache = logmel_cache(config.cache_dir, config.features)
    normal_paths = cache.ensure([r.path for r in normals], progress)
    outlier_paths = cache.ensure([r.path for r in outliers], progress) if outliers else []

    normal_val = split_validation([(r.section, r.domain) for r in normals], config.validation_fraction, config.seed)
    outlier_val = split_validation([(r.section,) for r in outliers], config.validation_fraction, config.seed + 1)
    pick = lambda paths, mask, flag: [p for p, m in zip(paths, mask) if m == flag]  # noqa: E731
    train_normal, val_normal = pick(normal_paths, normal_val, False), pick(normal_paths, normal_val, True)
    train_outlier, val_outlier = pick(outlier_paths, outlier_val, False), pick(outlier_paths, outlier_val, True)

    mean, variance = vector_statistics(train_normal, config.features)
    model = build_autoencoder(config.features.vector_size, mean, variance)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=autoencoder_loss(config.loss, config.margin))
    train_data = mixed_training_dataset(train_normal, train_outlier, config.features, config.batch_size, config.seed)
    val_data = (mixed_training_dataset(val_normal, val_outlier, config.features, config.batch_size, config.seed,
                                       shuffle=False) if val_normal else None)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss" if val_data else "loss", patience=config.patience,
                                               restore_best_weights=True)]
    # Explicit step counts over repeated streams: the mixed streams' length is unknown to Keras.
    vectors_per_clip = config.features.vectors_per_clip(CLIP_SAMPLES)
    steps = math.ceil((len(train_normal) + len(train_outlier)) * vectors_per_clip / config.batch_size)
    val_steps = math.ceil((len(val_normal) + len(val_outlier)) * vectors_per_clip / config.batch_size)
    history = model.fit(train_data.repeat(), steps_per_epoch=steps, epochs=config.epochs, callbacks=callbacks,
                        validation_data=val_data.repeat() if val_data else None,
                        validation_steps=val_steps if val_data else None, verbose=verbose)

    train_scores = autoencoder_clip_scores(model, clip_vectors_dataset(train_normal, config.features))
    threshold = gamma_threshold(train_scores, config.threshold_quantile)
    summary = {
        "kind": "ae",
        "machine": config.machine,
        "loss": config.loss,
        "outlier": config.resolved_outlier(),
        "threshold": threshold,
        "threshold_rule": f"gamma fit to {len(train_scores)} training-normal clip scores, quantile {config.threshold_quantile}",
        "clips": {"train_normal": len(train_normal), "val_normal": len(val_normal),
                  "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
        "epochs_run": len(history.history["loss"]),
        "best_val_loss": float(min(history.history["val_loss"])) if val_data else None,
        "fit_seconds": round(time.perf_counter() - started, 1),
        "features": asdict(config.features),
    }

    def write(folder: str) -> None:
        model.save(os.path.join(folder, MODEL_FILE))
        write_json(os.path.join(folder, DETECTOR_FILE), summary)
        write_json(os.path.join(folder, "config.json"), asdict(config))
        write_json(os.path.join(folder, "history.json"), {k: [float(v) for v in vs] for k, vs in history.history.items()})
        write_json(os.path.join(folder, "normalisation.json"), {"mean": mean.tolist(), "variance": variance.tolist()})

    save_atomically(config.folder(), write)
    summary["folder"] = config.folder()
    return summary
