"""MobileNetV2 fine-tuned on STFT spectrogram images: this machine's clips against an outlier type's.

The kind ``mobilenet`` (the DCASE 2022 technical report's second system): its configuration, its
trainer with the quantisation-aware int8 twin, and everything else the project needs to know
about it (registered at the end). The network and its score layers are in
:mod:`asdkeras.models.mobilenet`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from asdkeras.augment import AugmentConfig
from asdkeras.detectors import DetectorKind, register
from asdkeras.detectors.config import (LEARNING_RATE, MIN_HELD_OUT_PER_CONDITION, OUTLIER, OUTLIER_CLIPS, PATIENCE,
                                      FitConfig, Option, outlier_records, setting)
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.feature_settings import ImageConfig
from asdkeras.names import CONFIG_FILE, HISTORY_FILE, INT8
from asdkeras.pairing import resolve_outlier
from asdkeras.progress import Progress, no_progress
from asdkeras.splits import partition, split_validation

if TYPE_CHECKING:
    from asdkeras.detector import Detector

THRESHOLD_RULES = ("quantile", "eq2")
"""``--threshold-rule``: the normal quantile in the clip's condition, or the report's Eq. 2."""

REPORT_OUTLIERS = {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "gearbox",
                   "gearbox": "fan", "slider": "valve", "valve": "slider"}
"""Machine type -> outlier machine type (the DCASE 2022 technical report, Table 3)."""


@dataclass(kw_only=True)
class MobileNetConfig(FitConfig):
    """Everything a MobileNetV2 fit depends on; saved as ``config.json`` beside the model.

    ``train_clips`` random training clips of the machine (the report: 500), ``augmented_clips``
    augmented copies of them (None: twice as many, the report's 1000 for 500), and
    ``outlier_clips`` clips of the outlier type (None: as many as the machine's real and
    augmented clips together). With pretrained weights, phase 1 trains the head for ``epochs`` and
    phase 2 unfreezes the top ``fine_tune_blocks`` blocks for ``fine_tune_epochs`` at
    ``fine_tune_learning_rate``; from scratch (``weights`` None or "none") the whole network
    trains for ``epochs + fine_tune_epochs`` at ``learning_rate`` and its batch-norm statistics
    are then recomputed for the final weights.
    ``int8_epochs``: epochs of quantisation-aware fine-tuning of the int8 twin
    (:mod:`asdkeras.models.quantise`), saved in the detector's ``int8/`` folder with its own
    thresholds; the integer TFLite variants are converted from it. 0: no twin (those variants
    then come from post-training quantisation of the float network, which changes decisions).
    ``threshold_rule`` decides: "quantile" (``threshold_quantile`` of held-out normals' scores,
    as for every detector) or "eq2" (the report's Eq. 2 with ``threshold_alpha``); both are saved.
    Augmentation: PitchShift within +-``pitch_semitones``, TimeStretch rates in ``stretch_range``,
    optional AddBackgroundNoise from ``background_noise_dir``.
    """

    kind: ClassVar[str] = "mobilenet"
    held_out_per_condition: ClassVar[int] = MIN_HELD_OUT_PER_CONDITION
    outlier: str | None = setting("auto", OUTLIER)
    weights: str | None = setting("imagenet", Option("initial weights: imagenet, none, or a no-top .h5 path", none="none"))
    width: float = setting(1.0, Option("width multiplier alpha (0.35 is the smallest with ImageNet weights)", float))
    image_size: int = setting(320, Option("image side in pixels", int, minimum=32))
    train_clips: int = setting(500, Option("random training clips of the machine", int, minimum=1))
    augmented_clips: int | None = setting(None, Option("augmented copies", int, minimum=0, none="twice --train-clips"))
    outlier_clips: int | None = setting(None, OUTLIER_CLIPS)
    epochs: int = setting(5, Option("maximum epochs of the head alone", int, minimum=1))
    fine_tune_epochs: int = setting(5, Option("epochs with the top blocks unfrozen", int, minimum=0))
    fine_tune_blocks: int = setting(3, Option("top blocks to unfreeze", int, minimum=0, maximum=16))
    learning_rate: float = setting(1e-3, LEARNING_RATE)
    fine_tune_learning_rate: float = 1e-4
    int8_epochs: int = setting(2, Option("quantisation-aware fine-tuning epochs of the int8 twin that the integer "
                                         "TFLite variants come from; 0: no twin", int, minimum=0))
    batch_size: int = setting(32, Option("batch size in images", int, minimum=1))
    patience: int = setting(3, PATIENCE)
    dropout: float = 0.2
    threshold_rule: str = setting("quantile", Option("the normal quantile in the clip's operating condition or the "
                                                     "report's Eq. 2 (both are saved)", choices=THRESHOLD_RULES))
    threshold_alpha: float = setting(0.04, Option("the report's alpha in Eq. 2", float))
    workers: int | None = None
    pitch_semitones: float = setting(2.0, Option("PitchShift range +- semitones", float))
    stretch_range: tuple = setting((0.9, 1.1), Option("TimeStretch rate range MIN,MAX", "pair"))
    background_noise_dir: str | None = setting(None, Option("folder of noise files for AddBackgroundNoise", none="off",
                                                            flag="background-noise"))

    def __post_init__(self):
        if self.weights == "none":
            self.weights = None
        if self.threshold_rule not in THRESHOLD_RULES:
            raise AsdError(f"threshold rule '{self.threshold_rule}' is not one of {', '.join(THRESHOLD_RULES)}")
        self.augment_config()  # validate the ranges now, not after the images are made

    def normal_cap(self) -> int | None:
        return self.train_clips

    def image_config(self) -> ImageConfig:
        return ImageConfig(image_size=self.image_size)

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(pitch_semitones=self.pitch_semitones, stretch_min=self.stretch_range[0],
                             stretch_max=self.stretch_range[1], background_noise_dir=self.background_noise_dir)


def early_stopping_monitor(weights: str | None, has_validation: bool) -> str:
    """The loss MobileNetV2 early stopping watches.

    From scratch, validation runs with batch-norm statistics that are only recomputed after the
    fit (:func:`recalibrate_batch_norm`), so its loss means nothing until then: the training
    loss is watched instead.
    """
    return "val_loss" if has_validation and weights is not None else "loss"


def fit_mobilenet(config: MobileNetConfig, progress: Progress = no_progress, verbose: int = 0,
                  skipped: SkippedFiles | None = None) -> Detector:
    """Fine-tune MobileNetV2 on spectrogram images (machine vs outliers), threshold and save it."""
    import keras
    import scipy.special

    from asdkeras.detector import Detector
    from asdkeras.fit import (cached_features, history_dict, judge_per_condition, note_held_out, require_training_clips,
                              split_files)
    from asdkeras.frontend import ImageFrontend
    from asdkeras.models.mobilenet import (build_mobilenet, mobilenet_descriptor, mobilenet_scoring_model,
                                           recalibrate_batch_norm, runs_eagerly, unfreeze_top_blocks)
    from asdkeras.pipeline import augmented_clips, image_dataset
    from asdkeras.scoring import eq2_threshold

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    model = build_mobilenet(config.image_size, config.width, config.weights, config.dropout)  # fail fast on weights
    frontend = ImageFrontend(config.image_config(), channel=config.channel)
    images = frontend.cache(config.cache_dir)
    train_records, val_records = config.normal_split()
    (train_records, train_real_images), (val_records, val_real_images) = cached_features(
        images, [train_records, val_records], progress, skipped)
    require_training_clips(train_real_images, config.machine)
    note_held_out(val_real_images, train_real_images, config)
    train_real, val_real = [r.path for r in train_records], [r.path for r in val_records]
    augmented_count = 2 * len(train_real) if config.augmented_clips is None else config.augmented_clips
    augmented = augmented_clips(train_real, augmented_count, config.augment_config(), config.cache_dir, config.seed,
                                progress, config.workers, config.channel)
    outlier_machine = resolve_outlier(REPORT_OUTLIERS, config.machine, config.outlier, config.machine_types())
    outliers = outlier_records(config.data_dir, config.subset, outlier_machine,
                               config.outlier_clips or len(train_real) + len(augmented), config.seed + 1)
    [(outliers, outlier_images)] = cached_features(images, [outliers], progress, skipped)
    outlier_val = split_validation([(r.section,) for r in outliers], config.validation_fraction, config.seed + 1)
    train_outlier, val_outlier = partition(outlier_images, outlier_val)

    positive_images = train_real_images + images.ensure(augmented, progress, skipped)
    train_paths = positive_images + train_outlier
    train_labels = [1.0] * len(positive_images) + [0.0] * len(train_outlier)
    val_paths = val_real_images + val_outlier
    val_labels = [1.0] * len(val_real) + [0.0] * len(val_outlier)
    positives = len(positive_images)
    class_weight = ({1: (len(train_labels)) / (2 * positives), 0: len(train_labels) / (2 * len(train_outlier))}
                    if train_outlier else None)
    train_data = image_dataset(train_paths, config.image_config(), config.batch_size, train_labels, True, config.seed)
    val_data = image_dataset(val_paths, config.image_config(), config.batch_size, val_labels) if val_paths else None
    monitor = early_stopping_monitor(config.weights, has_validation=val_data is not None)

    def run_phase(epochs: int, learning_rate: float, network=model):
        validated = val_data is not None and epochs > 1
        batches = epochs * (math.ceil(len(train_paths) / config.batch_size)
                            + (math.ceil(len(val_paths) / config.batch_size) if validated else 0))
        network.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                        metrics=["binary_accuracy"], run_eagerly=runs_eagerly(batches))
        if epochs == 1:  # no best epoch to choose, so no validation (it cost the demo's twin 6 of 29 s)
            return network.fit(train_data, epochs=1, class_weight=class_weight, verbose=verbose)
        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
        return network.fit(train_data, validation_data=val_data, epochs=epochs, class_weight=class_weight,
                           callbacks=[stop], verbose=verbose)

    if config.weights is None:  # random initialisation: the whole network trains in one phase
        histories = [run_phase(config.epochs + config.fine_tune_epochs, config.learning_rate)]
        recalibrate_batch_norm(model, train_data)
    else:
        histories = [run_phase(config.epochs, config.learning_rate)]
    if config.weights is not None and config.fine_tune_epochs > 0 and config.fine_tune_blocks > 0:
        unfreeze_top_blocks(model, config.fine_tune_blocks)
        histories.append(run_phase(config.fine_tune_epochs, config.fine_tune_learning_rate))

    judged_float = None

    def thresholded(network: keras.Model, **info) -> Detector:
        nonlocal judged_float
        raw = mobilenet_scoring_model(network)
        judged = judge_per_condition(raw, mobilenet_descriptor(config.image_size), frontend, (train_records, train_real_images),
                                     (val_records, val_real_images), config.threshold_quantile, config.seed,
                                     like=judged_float, confidence=config.threshold_confidence)
        judged_float = judged_float or judged
        thresholds = judged.thresholds
        train_logits = -judged.raw[:len(train_real_images), 0]  # the raw score is -logit
        eq2 = eq2_threshold(scipy.special.expit(train_logits), config.threshold_alpha)
        # Eq. 2 is a level of the raw logit; expressed on the judged score of a source clip
        stats = judged.conditions[0].score_stats
        source = [stats[g] for g in stats if g.endswith("/source")] or list(stats.values())
        source_mean, source_std = np.mean(source, axis=0)
        thresholds["eq2"] = {**eq2, "logit_threshold": eq2["value"], "value": (eq2["value"] - source_mean) / source_std,
                             "description": eq2["description"] + "; on the judged score, that logit in units of "
                                            "the source condition's normals, applied in every condition"}
        return Detector(kind=config.kind, machine=config.machine, frontend=frontend, model=judged.model,
                        score_units="-z, the negative logit of p(this machine) = sigmoid(z), standardised by the "
                                    "normal scores of the operating condition the clip most likely comes from",
                        thresholds=thresholds, threshold_rule=config.threshold_rule,
                        normal_scores=judged.normal_scores,
                        info={"outlier": outlier_machine,
                              "weights": config.weights if config.weights in (None, "imagenet")
                              else os.path.abspath(config.weights),
                              "width": config.width, **judged.info(), **info})

    history = history_dict(*histories)
    detector = thresholded(
        model,
        clips={"train_normal": len(train_real), "augmented": len(augmented), "val_normal": len(val_real),
               "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
        epochs_run=len(history.get("loss", [])),
        best_val_loss=float(min(history["val_loss"])) if "val_loss" in history else None,
        fit_seconds=round(time.perf_counter() - started, 1))
    variant_extra = {}
    if config.int8_epochs > 0:
        from asdkeras.models.quantise import calibrate_ranges, quantisation_aware

        started = time.perf_counter()
        network, _ = quantisation_aware(model, config.dropout)
        calibrate_ranges(model, network, train_data)
        twin_history = history_dict(run_phase(config.int8_epochs, config.fine_tune_learning_rate, network))
        detector.variants[INT8] = thresholded(network, quantisation_aware=True,
                                              int8_epochs=len(twin_history.get("loss", [])),
                                              fit_seconds=round(time.perf_counter() - started, 1))
        variant_extra[INT8] = {HISTORY_FILE: twin_history}
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), HISTORY_FILE: history, **split_files(config)},
                  variant_extra)
    return detector


def calibrate_mobilenet(folder: str, config: MobileNetConfig, progress: Progress = no_progress,
                        skipped: SkippedFiles | None = None) -> Detector:
    """The saved MobileNetV2 and its int8 twin judged again with the calibration clips of ``config``
    (:mod:`asdkeras.calibration`); the ``eq2`` threshold is kept as saved."""
    from asdkeras.calibration import judge_network_again
    from asdkeras.models.mobilenet import mobilenet_descriptor

    return judge_network_again(folder, config, mobilenet_descriptor(config.image_size), progress, skipped)


KIND = register(DetectorKind(
    name="mobilenet", title="MobileNetV2", colour="#d62728",
    description="MobileNetV2 on spectrogram images", config=MobileNetConfig, fit=fit_mobilenet,
    calibrate=calibrate_mobilenet,
    layer_modules=("asdkeras.models.mobilenet", "asdkeras.models.quantise"),
    float_tail=("/logit",),
    demo_options=lambda settings: {"width": settings["width"], "image_size": settings["image_size"],
                                   "epochs": settings["mobilenet_epochs"], "batch_size": settings["mobilenet_batch_size"],
                                   "augmented_clips": settings["augmented_clips"], "int8_epochs": settings["int8_epochs"],
                                   "fine_tune_epochs": settings["mobilenet_epochs"]},
    variant_titles={INT8: ("MobileNetV2 int8 twin", "#ff9896")}, tie_rank=2))
