"""Training per machine type and model (autoencoder, MobileNetV2), each saved as a detector folder."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from asdkeras.audio import CLIP_SAMPLES
from asdkeras.augment import AugmentConfig
from asdkeras.data.layout import ClipRecord, scan_split, select
from asdkeras.errors import AsdError
from asdkeras.features import ImageConfig, LogMelConfig
from asdkeras.pairing import resolve_outlier
from asdkeras.pipeline import (Progress, no_progress, augmented_clips, clip_vectors_dataset, image_cache,
                               image_dataset, logmel_cache, mixed_training_dataset, partition, split_validation,
                               vector_statistics)
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
    outliers = outlier_records(config.data_dir, config.subset, config.resolved_outlier(),
                               config.outlier_clips or len(normals), config.seed + 1)
    return normals, outliers


def outlier_records(data_dir: str, subset: str, outlier_machine: str | None, count: int, seed: int) -> list[ClipRecord]:
    """Up to ``count`` random training clips of the outlier machine type ([] without outlier exposure)."""
    if not outlier_machine:
        return []
    try:
        outliers = scan_split(data_dir, outlier_machine, "train", subset)
    except AsdError as exc:
        raise AsdError(f"outlier machine '{outlier_machine}' has no training data ({exc}); "
                       f"add it to the dataset or pass --outlier none") from None
    return _subsample(outliers, count, seed)


def _save_detector(folder: str, model, summary: dict, config, history: dict, extra: dict | None = None) -> dict:
    """Write a detector folder atomically (model, detector.json, config.json, history.json, extras)."""
    def write(tmp_dir: str) -> None:
        model.save(os.path.join(tmp_dir, MODEL_FILE))
        for name, document in {DETECTOR_FILE: summary, "config.json": asdict(config), "history.json": history,
                               **(extra or {})}.items():
            write_json(os.path.join(tmp_dir, name), document)

    save_atomically(folder, write)
    return {**summary, "folder": folder}


def _history_dict(*histories) -> dict:
    merged: dict = {}
    for phase, history in enumerate(histories, start=1):
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
        merged.setdefault("phase", []).extend([phase] * len(history.history.get("loss", [])))
    return merged


def fit_autoencoder(config: AutoencoderConfig, progress: Progress = no_progress, verbose: int = 0) -> dict:
    """Train, threshold and save one autoencoder; returns the summary written to ``detector.json``."""
    import keras

    from asdkeras.models.autoencoder import autoencoder_loss, build_autoencoder

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    normals, outliers = training_records(config)
    cache = logmel_cache(config.cache_dir, config.features)
    normal_paths = cache.ensure([r.path for r in normals], progress)
    outlier_paths = cache.ensure([r.path for r in outliers], progress)

    normal_val = split_validation([(r.section, r.domain) for r in normals], config.validation_fraction, config.seed)
    outlier_val = split_validation([(r.section,) for r in outliers], config.validation_fraction, config.seed + 1)
    train_normal, val_normal = partition(normal_paths, normal_val)
    train_outlier, val_outlier = partition(outlier_paths, outlier_val)

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
    return _save_detector(config.folder(), model, summary, config, _history_dict(history),
                          {"normalisation.json": {"mean": mean.tolist(), "variance": variance.tolist()}})


@dataclass
class MobileNetConfig:
    """Everything a MobileNetV2 fit depends on; saved as ``config.json`` beside the model.

    ``train_clips`` random training clips of the machine (the report: 500), ``augmented_clips``
    augmented copies of them (None: twice as many, the report's 1000 for 500), and
    ``outlier_clips`` clips of the outlier type (None: as many as the machine's real and
    augmented clips together). With pretrained weights, phase 1 trains the head for ``epochs`` and
    phase 2 unfreezes the top ``fine_tune_blocks`` blocks for ``fine_tune_epochs`` at
    ``fine_tune_learning_rate``; from scratch (``weights=None``) the whole network trains for
    ``epochs + fine_tune_epochs`` at ``learning_rate`` and its batch-norm statistics are then
    recomputed for the final weights.
    ``threshold_alpha`` is the report's alpha in Eq. 2.
    """

    machine: str
    outlier: str | None = "auto"
    weights: str | None = "imagenet"
    width: float = 1.0
    image_size: int = 320
    train_clips: int = 500
    augmented_clips: int | None = None
    outlier_clips: int | None = None
    epochs: int = 5
    fine_tune_epochs: int = 5
    fine_tune_blocks: int = 3
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    batch_size: int = 32
    patience: int = 3
    dropout: float = 0.2
    threshold_alpha: float = 0.04
    validation_fraction: float = 0.1
    seed: int = 0
    workers: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data_dir: str = "data"
    models_dir: str = "saved_models"
    cache_dir: str = "cache"
    subset: str = "dev_data"
    output_dir: str | None = None

    def folder(self) -> str:
        return self.output_dir or detector_dir(self.models_dir, self.machine, "mobilenet")

    def image_config(self) -> ImageConfig:
        return ImageConfig(image_size=self.image_size)


def early_stopping_monitor(weights: str | None, has_validation: bool) -> str:
    """The loss MobileNetV2 early stopping watches.

    From scratch, validation runs with batch-norm statistics that are only recomputed after the
    fit (:func:`recalibrate_batch_norm`), so its loss means nothing until then: the training
    loss is watched instead.
    """
    return "val_loss" if has_validation and weights is not None else "loss"


def eq2_threshold(p_machine: np.ndarray, alpha: float) -> float:
    """The report's Eq. 2: (1 - alpha) x mean p(this machine) over training clips; below it = anomaly."""
    if not 0 <= alpha <= 1:
        raise AsdError(f"threshold alpha {alpha} must lie in [0, 1] (the report uses 0.04)")
    return float((1 - alpha) * np.mean(p_machine))


def fit_mobilenet(config: MobileNetConfig, progress: Progress = no_progress, verbose: int = 0) -> dict:
    """Fine-tune MobileNetV2 on spectrogram images (machine vs outliers), threshold and save it."""
    import keras

    from asdkeras.models.mobilenet import build_mobilenet, recalibrate_batch_norm, unfreeze_top_blocks

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    model = build_mobilenet(config.image_size, config.width, config.weights, config.dropout)  # fail fast on weights
    normals = select(scan_split(config.data_dir, config.machine, "train", config.subset), label="normal")
    selected = _subsample(normals, config.train_clips, config.seed)
    val_mask = split_validation([(r.section, r.domain) for r in selected], config.validation_fraction, config.seed)
    train_real, val_real = partition([r.path for r in selected], val_mask)
    augmented_count = 2 * len(train_real) if config.augmented_clips is None else config.augmented_clips
    augmented = augmented_clips(train_real, augmented_count, config.augment, config.cache_dir, config.seed,
                                progress, config.workers)
    outlier_machine = resolve_outlier("mobilenet", config.machine, config.outlier)
    outliers = outlier_records(config.data_dir, config.subset, outlier_machine,
                               config.outlier_clips or len(train_real) + len(augmented), config.seed + 1)
    outlier_val = split_validation([(r.section,) for r in outliers], config.validation_fraction, config.seed + 1)
    train_outlier, val_outlier = partition([r.path for r in outliers], outlier_val)

    images = image_cache(config.cache_dir, config.image_config())
    to_cache = lambda paths: images.ensure(paths, progress)  # noqa: E731
    train_real_images = to_cache(train_real)
    train_paths = train_real_images + to_cache(augmented) + to_cache(train_outlier)
    train_labels = [1.0] * (len(train_real) + len(augmented)) + [0.0] * len(train_outlier)
    val_paths = to_cache(val_real) + to_cache(val_outlier)
    val_labels = [1.0] * len(val_real) + [0.0] * len(val_outlier)
    positives = len(train_real) + len(augmented)
    class_weight = ({1: (len(train_labels)) / (2 * positives), 0: len(train_labels) / (2 * len(train_outlier))}
                    if train_outlier else None)
    train_data = image_dataset(train_paths, config.image_config(), config.batch_size, train_labels, True, config.seed)
    val_data = image_dataset(val_paths, config.image_config(), config.batch_size, val_labels) if val_paths else None
    monitor = early_stopping_monitor(config.weights, has_validation=val_data is not None)

    def run_phase(epochs: int, learning_rate: float):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                      metrics=["binary_accuracy"])
        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
        return model.fit(train_data, validation_data=val_data, epochs=epochs, class_weight=class_weight,
                         callbacks=[stop], verbose=verbose)

    if config.weights is None:  # random initialisation: the whole network trains in one phase
        histories = [run_phase(config.epochs + config.fine_tune_epochs, config.learning_rate)]
        recalibrate_batch_norm(model, train_data)
    else:
        histories = [run_phase(config.epochs, config.learning_rate)]
    if config.weights is not None and config.fine_tune_epochs > 0 and config.fine_tune_blocks > 0:
        unfreeze_top_blocks(model, config.fine_tune_blocks)
        histories.append(run_phase(config.fine_tune_epochs, config.fine_tune_learning_rate))

    p_train = model.predict(image_dataset(train_real_images, config.image_config(), config.batch_size), verbose=0)
    p_threshold = eq2_threshold(p_train, config.threshold_alpha)
    history = _history_dict(*histories)
    summary = {
        "kind": "mobilenet",
        "machine": config.machine,
        "outlier": outlier_machine,
        "weights": config.weights if config.weights in (None, "imagenet") else os.path.abspath(config.weights),
        "width": config.width,
        "threshold": 1.0 - p_threshold,
        "p_threshold": p_threshold,
        "threshold_rule": f"score = 1 - p; anomaly when p < (1 - {config.threshold_alpha}) x mean p over "
                          f"{len(train_real)} training clips (report Eq. 2)",
        "clips": {"train_normal": len(train_real), "augmented": len(augmented), "val_normal": len(val_real),
                  "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
        "epochs_run": len(history.get("loss", [])),
        "best_val_loss": float(min(history["val_loss"])) if "val_loss" in history else None,
        "fit_seconds": round(time.perf_counter() - started, 1),
        "image": asdict(config.image_config()),
    }
    return _save_detector(config.folder(), model, summary, config, history)
