"""Training per machine type and model (autoencoder, MobileNetV2), each saved as a detector folder.

Each trainer takes its configuration dataclass and returns the saved :class:`~asdkeras.detector.Detector`;
:data:`TRAINERS` maps a model kind to both, so callers need no branch per kind.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, ClassVar

import numpy as np
import scipy.special

from asdkeras.audio import CLIP_SAMPLES
from asdkeras.augment import AugmentConfig
from asdkeras.data.layout import (DERIVED_SPLIT_RULE, MACHINE_TYPES, ClipRecord, derived_split, detect_layout,
                                  list_machines, machine_dir, random_subset, scan_split, select)
from asdkeras.detector import Detector
from asdkeras.names import CACHE_DIR, CONFIG_FILE, DEV_DATA, HISTORY_FILE, MODELS_DIR, SPLIT_FILE, detector_dir
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.features import ImageConfig, LogMelConfig
from asdkeras.frontend import ImageFrontend, LogMelFrontend
from asdkeras.pairing import resolve_outlier
from asdkeras.pipeline import (Progress, no_progress, augmented_clips, image_dataset, mixed_training_dataset,
                               partition, split_validation, vector_statistics)
from asdkeras.scoring import eq2_threshold, prediction_threshold, quantile_threshold, score_statistics

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
    data_dir: str = "data"
    models_dir: str = MODELS_DIR
    cache_dir: str = CACHE_DIR
    subset: str = DEV_DATA
    output_dir: str | None = None
    channel: int | None = None

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
        normals = _subsample(normals, self.normal_cap(), self.seed)
        held_out = split_validation([(r.section, r.domain) for r in normals], self.validation_fraction, self.seed,
                                    self.held_out_per_condition)
        return partition(normals, held_out)


@dataclass(kw_only=True)
class AutoencoderConfig(FitConfig):
    """Everything an autoencoder fit depends on; saved as ``config.json`` beside the model.

    Counts are clips; ``target_clips`` caps the machine's training clips (the report: 3000),
    ``outlier_clips`` the outlier machine's (None: as many as the machine's, i.e. 1:1).
    ``margin`` is the hinge's m in normalised squared-error units.
    """

    kind: ClassVar[str] = "ae"
    held_out_per_condition: ClassVar[int] = MIN_HELD_OUT_PER_CONDITION
    outlier: str | None = "auto"
    loss: str = "oe"
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 5
    target_clips: int | None = 3000
    outlier_clips: int | None = None
    margin: float = 1.0
    features: LogMelConfig = field(default_factory=LogMelConfig)

    def normal_cap(self) -> int | None:
        return self.target_clips

    def resolved_outlier(self) -> str | None:
        if self.loss == "mse":
            if self.outlier not in (None, "none", "auto"):
                raise AsdError(f"--loss mse trains the clear AE on normals only; drop --outlier {self.outlier} "
                               f"or choose --loss oe / oe-hinge")
            return None
        return resolve_outlier("ae", self.machine, self.outlier, self.machine_types())


def _subsample(records: list[ClipRecord], count: int | None, seed: int) -> list[ClipRecord]:
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
    return _subsample(outliers, count, seed)


def _cached(cache, groups: list[list[ClipRecord]], progress: Progress,
            skipped: SkippedFiles | None) -> list[tuple[list[ClipRecord], list[str]]]:
    """Per group of records: those whose features are cached, and their cache paths.

    The groups are cached in one pass (one progress bar, one conversion note); unreadable files
    go to ``skipped``.
    """
    skipped = SkippedFiles.or_strict(skipped)
    records = [r for group in groups for r in group]
    paths = cache.ensure([r.path for r in records], progress, skipped)
    cached = dict(zip([r.path for r in records if r.path not in skipped], paths))
    return [([r for r in group if r.path in cached], [cached[r.path] for r in group if r.path in cached])
            for group in groups]


def _history_dict(*histories) -> dict:
    merged: dict = {}
    for phase, history in enumerate(histories, start=1):
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
        merged.setdefault("phase", []).extend([phase] * len(history.history.get("loss", [])))
    return merged


def fit_autoencoder(config: AutoencoderConfig, progress: Progress = no_progress, verbose: int = 0,
                    skipped: SkippedFiles | None = None) -> Detector:
    """Train, threshold and save one autoencoder; returns the saved detector.

    ``skipped``: unreadable clips are recorded there and left out (else the first one raises);
    so for every trainer.
    """
    import keras

    from asdkeras.models.autoencoder import (autoencoder_descriptor, autoencoder_loss, autoencoder_scoring_model,
                                             build_autoencoder)

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    train_records, val_records = config.normal_split()
    outlier_machine = config.resolved_outlier()
    outliers = outlier_records(config.data_dir, config.subset, outlier_machine,
                               config.outlier_clips or len(train_records) + len(val_records), config.seed + 1)
    frontend = LogMelFrontend(config.features, channel=config.channel)
    cache = frontend.cache(config.cache_dir)
    (train_records, train_normal), (val_records, val_normal), (outliers, outlier_paths) = _cached(
        cache, [train_records, val_records, outliers], progress, skipped)
    _require_training_clips(train_normal, config.machine)
    _note_held_out(val_normal, train_normal, config)
    outlier_val = split_validation([(r.section,) for r in outliers], config.validation_fraction, config.seed + 1)
    train_outlier, val_outlier = partition(outlier_paths, outlier_val)

    mean, variance = vector_statistics(train_normal, config.features)
    network = build_autoencoder(config.features.vector_size, mean, variance)
    network.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
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
    history = network.fit(train_data.repeat(), steps_per_epoch=steps, epochs=config.epochs, callbacks=callbacks,
                          validation_data=val_data.repeat() if val_data else None,
                          validation_steps=val_steps if val_data else None, verbose=verbose)

    judged = judge_per_condition(autoencoder_scoring_model(network, *frontend.input_shape, config.features.n_frames),
                                 autoencoder_descriptor(), frontend, (train_records, train_normal),
                                 (val_records, val_normal), config.threshold_quantile, config.seed)
    detector = Detector(
        kind="ae", machine=config.machine, frontend=frontend, model=judged.model,
        score_units="mean squared reconstruction error of the clip's log-mel vectors, standardised by the "
                    "normal errors of the operating condition the clip most likely comes from",
        thresholds=judged.thresholds, threshold_rule="quantile", normal_scores=judged.normal_scores,
        info={"loss": config.loss, "outlier": outlier_machine,
              "views": ["steady"],  # a clip-mean error: steady changes count, a short event is averaged away
              **judged.info(),
              "clips": {"train_normal": len(train_normal), "val_normal": len(val_normal),
                        "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
              "epochs_run": len(history.history["loss"]),
              "best_val_loss": float(min(history.history["val_loss"])) if val_data else None,
              "fit_seconds": round(time.perf_counter() - started, 1)})
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), HISTORY_FILE: _history_dict(history),
                                    **split_files(config)})
    return detector


@dataclass
class JudgedScores:
    """A network's scoring model judged per operating condition, with its threshold (see :func:`judge_per_condition`)."""

    model: object
    conditions: object
    thresholds: dict
    normal_scores: dict
    descriptors: np.ndarray
    raw: np.ndarray
    """The network's raw scores of the training normals, those it trained on first."""

    def info(self) -> dict:
        from asdkeras.models.conditions import describe

        return {"judged_per_condition": len(self.conditions.score_stats) > 1, "conditions": describe(self.conditions)}


def judge_per_condition(raw_model, descriptor, frontend, trained: tuple[list, list], held_out: tuple[list, list],
                        quantile: float, seed: int, like: JudgedScores | None = None) -> JudgedScores:
    """The raw scoring model judged in each clip's operating condition, and the threshold on its scores.

    Parameters
    ----------
    raw_model : keras.Model
        Features -> the network's raw clip score.
    descriptor : keras.layers.Layer
        Features -> clip descriptor (see :func:`asdkeras.models.conditions.conditioned_scoring_model`).
    frontend : LogMelFrontend or ImageFrontend
        The model's front-end.
    trained, held_out : (records, cache paths)
        Training normals the network trained on, and those it did not.
    quantile : float
        Intended share of normal clips kept as normal.
    like : JudgedScores, optional
        Reuse its descriptors and condition mixtures (the int8 twin of the same network); only
        the score statistics are the new network's.

    Each condition's normal scores are measured on all its training normals, those the network
    trained on corrected by the held-out ones (:func:`asdkeras.models.conditions.condition_statistics`),
    so the threshold is the normal quantile (:func:`asdkeras.scoring.prediction_threshold`);
    ``flagged_share_by_group`` is the share of held-out normals it flags per domain. With fewer
    than :data:`MIN_HELD_OUT_PER_CONDITION` held out in both domains, nothing is corrected, and the
    record says so.
    """
    from asdkeras.models.conditions import Conditions, condition_statistics, conditioned_scoring_model, fit_conditions

    records, paths = trained[0] + held_out[0], trained[1] + held_out[1]
    is_held_out = np.array([False] * len(trained[1]) + [True] * len(held_out[1]))
    sections, domains = [r.section for r in records], [r.domain for r in records]
    if like is None:  # one pass over the features for both
        import keras

        features = keras.Input(frontend.input_shape)
        raw, descriptors = keras.Model(features, [raw_model(features), descriptor(features)]).predict(
            frontend.dataset(paths), verbose=0)
        descriptors = np.asarray(descriptors, np.float64).reshape(len(paths), -1)
        conditions = Conditions(*fit_conditions(descriptors, sections, domains, seed), {}, {})
    else:
        raw = raw_model.predict(frontend.dataset(paths), verbose=0)
        descriptors, conditions = like.descriptors, like.conditions
    raw = np.asarray(raw, np.float64).reshape(-1)
    stats, summary = condition_statistics(raw, sections, domains, is_held_out, MIN_HELD_OUT_PER_CONDITION, quantile)
    conditions = conditions.with_score_stats(stats, summary)
    scores = conditions.score(descriptors, raw)
    corrected = any(c["held_out_clips"] >= MIN_HELD_OUT_PER_CONDITION for c in summary["corrections"].values())
    measured = ("every training normal of its condition, those the network trained on corrected by the held-out ones"
                if corrected else
                f"every training normal ({len(held_out[1])} held out, too few to correct the clips the network trained "
                f"on, so more normals than intended may be flagged)")
    check = is_held_out if is_held_out.sum() >= 2 else np.ones(len(paths), bool)
    threshold = prediction_threshold(scores[check], np.asarray(domains)[check], quantile, measured)
    return JudgedScores(conditioned_scoring_model(raw_model, descriptor, conditions), conditions,
                        {"quantile": threshold},
                        {**score_statistics(scores[check]), "clips": "held-out training normals, judged per condition"},
                        descriptors, raw)


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
    int8_epochs: int = 2
    batch_size: int = 32
    patience: int = 3
    dropout: float = 0.2
    threshold_rule: str = "quantile"
    threshold_alpha: float = 0.04
    workers: int | None = None
    pitch_semitones: float = 2.0
    stretch_range: tuple = (0.9, 1.1)
    background_noise_dir: str | None = None

    def __post_init__(self):
        if self.weights == "none":
            self.weights = None
        if self.threshold_rule not in ("quantile", "eq2"):
            raise AsdError(f"threshold rule '{self.threshold_rule}' is not one of quantile, eq2")
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

    from asdkeras.models.mobilenet import (build_mobilenet, mobilenet_descriptor, mobilenet_scoring_model,
                                           recalibrate_batch_norm, unfreeze_top_blocks)

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    model = build_mobilenet(config.image_size, config.width, config.weights, config.dropout)  # fail fast on weights
    frontend = ImageFrontend(config.image_config(), channel=config.channel)
    images = frontend.cache(config.cache_dir)
    train_records, val_records = config.normal_split()
    (train_records, train_real_images), (val_records, val_real_images) = _cached(
        images, [train_records, val_records], progress, skipped)
    _require_training_clips(train_real_images, config.machine)
    _note_held_out(val_real_images, train_real_images, config)
    train_real, val_real = [r.path for r in train_records], [r.path for r in val_records]
    augmented_count = 2 * len(train_real) if config.augmented_clips is None else config.augmented_clips
    augmented = augmented_clips(train_real, augmented_count, config.augment_config(), config.cache_dir, config.seed,
                                progress, config.workers, config.channel)
    outlier_machine = resolve_outlier("mobilenet", config.machine, config.outlier, config.machine_types())
    outliers = outlier_records(config.data_dir, config.subset, outlier_machine,
                               config.outlier_clips or len(train_real) + len(augmented), config.seed + 1)
    [(outliers, outlier_images)] = _cached(images, [outliers], progress, skipped)
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
        network.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                        metrics=["binary_accuracy"])
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
                                     like=judged_float)
        judged_float = judged_float or judged
        thresholds = judged.thresholds
        train_logits = -judged.raw[:len(train_real_images)]  # the raw score is -logit
        eq2 = eq2_threshold(scipy.special.expit(train_logits), config.threshold_alpha)
        # Eq. 2 is a level of the raw logit; expressed on the judged score of a source clip
        stats = judged.conditions.score_stats
        source = [stats[g] for g in stats if g.endswith("/source")] or list(stats.values())
        source_mean, source_std = np.mean(source, axis=0)
        thresholds["eq2"] = {**eq2, "logit_threshold": eq2["value"], "value": (eq2["value"] - source_mean) / source_std,
                             "description": eq2["description"] + "; on the judged score, that logit in units of "
                                            "the source condition's normals, applied in every condition"}
        return Detector(kind="mobilenet", machine=config.machine, frontend=frontend, model=judged.model,
                        score_units="-z, the negative logit of p(this machine) = sigmoid(z), standardised by the "
                                    "normal scores of the operating condition the clip most likely comes from",
                        thresholds=thresholds, threshold_rule=config.threshold_rule,
                        normal_scores=judged.normal_scores,
                        info={"outlier": outlier_machine,
                              "weights": config.weights if config.weights in (None, "imagenet")
                              else os.path.abspath(config.weights),
                              "width": config.width, **judged.info(), **info})

    history = _history_dict(*histories)
    detector = thresholded(
        model,
        clips={"train_normal": len(train_real), "augmented": len(augmented), "val_normal": len(val_real),
               "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
        epochs_run=len(history.get("loss", [])),
        best_val_loss=float(min(history["val_loss"])) if "val_loss" in history else None,
        fit_seconds=round(time.perf_counter() - started, 1))
    twin, twin_history = None, None
    if config.int8_epochs > 0:
        from asdkeras.models.quantise import calibrate_ranges, quantisation_aware

        started = time.perf_counter()
        network, _ = quantisation_aware(model, config.dropout)
        calibrate_ranges(model, network, train_data)
        twin_history = _history_dict(run_phase(config.int8_epochs, config.fine_tune_learning_rate, network))
        twin = thresholded(network, quantisation_aware=True, int8_epochs=len(twin_history.get("loss", [])),
                           fit_seconds=round(time.perf_counter() - started, 1))
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), HISTORY_FILE: history, **split_files(config)},
                  int8_twin=twin, int8_twin_extra={HISTORY_FILE: twin_history})
    return detector


@dataclass(kw_only=True)
class GmmConfig(FitConfig):
    """Everything a pooled-GMM fit depends on; saved as ``config.json`` beside the model.

    ``pooling_decay``: "battery" (default: a steady view, the band mean, and a transient view,
    a max-like pooling, each with its own mixture, fused at score level; which max-like pooling
    is chosen by the pseudo-anomaly battery of :mod:`asdkeras.battery`, see
    :data:`asdkeras.models.gmm.VIEW_CANDIDATES`), one decay r in [0, 1] (1 = the band mean,
    0 = the max), "fuse" (the mean and r = 0.5 side by side in one vector), or "paper"
    (TWFR-GMM's per-type decay and component count, chosen there on labelled DCASE 2022 dev
    data). ``components`` per section's source GMM (None: 2, or the paper's with "paper");
    ``covariance_reg`` is added to covariance diagonals in standardised units.
    """

    kind: ClassVar[str] = "gmm"
    pooling_decay: str | float = "battery"
    components: int | None = None
    covariance_reg: float = 0.1
    target_clips: int | None = 3000
    features: LogMelConfig = field(default_factory=LogMelConfig)

    def normal_cap(self) -> int | None:
        return self.target_clips

    def pooling(self) -> tuple[tuple[float, ...] | None, int, str]:
        """The decays (None: chosen by the battery), the component count and the reason, from ``pooling_decay``."""
        from asdkeras.models.gmm import FUSED_DECAYS, PAPER_SETTINGS

        if self.pooling_decay == "battery":
            return None, self.components or 2, ("the default: a steady and a transient view fused at score level, "
                                                "the transient view's pooling chosen by the pseudo-anomaly battery")
        if self.pooling_decay == "fuse":
            return FUSED_DECAYS, self.components or 2, ("fused: band mean (r = 1) and a max-like pooling (r = 0.5) "
                                                        "side by side, so stationary and transient changes both count")
        if self.pooling_decay == "paper":
            if self.machine not in PAPER_SETTINGS:
                raise AsdError(f"--pooling-decay paper knows {', '.join(PAPER_SETTINGS)}, not {self.machine}; "
                               f"pass a decay in [0, 1], fuse or battery")
            decay, components = PAPER_SETTINGS[self.machine]
            return (decay,), self.components or components, (f"TWFR-GMM's published setting for {self.machine} "
                                                             f"(chosen there on labelled dev data)")
        try:
            decay = float(self.pooling_decay)
        except (TypeError, ValueError):
            decay = -1.0
        if not 0 <= decay <= 1:
            raise AsdError(f"--pooling-decay {self.pooling_decay}: use battery, fuse, paper or a decay in [0, 1] "
                           f"(1 = mean, 0 = max)")
        return (decay,), self.components or 2, "given by the user"


def fit_gmm(config: GmmConfig, progress: Progress = no_progress, verbose: int = 0,
            skipped: SkippedFiles | None = None) -> Detector:
    """Pool, fit the Gaussian mixture(s), threshold on held-out normals and save the detector."""
    import keras

    from asdkeras.models.gmm import gmm_scoring_model, pooling_model

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    decays, components, reason = config.pooling()
    train_records, val_records = config.normal_split()
    frontend = LogMelFrontend(config.features, channel=config.channel)
    cache = frontend.cache(config.cache_dir)
    (train_records, train_paths), (val_records, val_paths) = _cached(
        cache, [train_records, val_records], progress, skipped)
    _require_training_clips(train_paths, config.machine)
    _note_held_out(val_paths, train_paths, config, "the threshold comes from out-of-fold scores of all of them")
    if decays is None:
        return _fit_gmm_views(config, frontend, train_records, train_paths, val_records, val_paths, components,
                              reason, started, SkippedFiles.or_strict(skipped))

    pooler = pooling_model(*frontend.input_shape, decays)
    pooled = np.asarray(pooler.predict(frontend.dataset(train_paths), verbose=0), np.float64)
    mean, variance, (weights, means, chol, mixture) = _standardised_mixture(
        pooled, np.array([r.domain for r in train_records]), np.array([r.section for r in train_records]),
        components, config.covariance_reg, config.seed)
    scoring = gmm_scoring_model(*frontend.input_shape, decays, mean, variance, weights, means, chol)
    if len(val_paths) >= MIN_HELD_OUT:
        thresholds, normal_scores = held_out_threshold(scoring, frontend, val_paths, train_paths,
                                                       config.threshold_quantile, [r.domain for r in val_records],
                                                       [r.domain for r in train_records])
    else:  # too few held out: refits are cheap, so every clip is scored by a mixture fitted without it
        records = train_records + val_records
        every = pooled if not val_paths else np.r_[pooled, pooler.predict(frontend.dataset(val_paths), verbose=0)]
        scores, folds = gmm_out_of_fold_scores(every, np.array([r.domain for r in records]),
                                               np.array([r.section for r in records]), components,
                                               config.covariance_reg, config.seed)
        thresholds, normal_scores = _out_of_fold_threshold(scores, folds, records, config.threshold_quantile)
    return _save_gmm(config, frontend, scoring, thresholds, normal_scores,
                     {"decays": list(decays), "rule": config.pooling_decay, "reason": reason,
                      "views": _views_of(decays)},
                     {"components_per_section": components, "covariance_reg": config.covariance_reg,
                      "sections": mixture, "total_components": int(len(weights))},
                     len(train_paths), len(val_paths), started)


def _views_of(decays) -> list[str]:
    """Which fault families a pooling keeps: "steady" (a mean-like decay) and/or "transient" (max-like)."""
    return [view for view, keeps in (("steady", any(d >= 0.9 for d in decays)),
                                     ("transient", any(d <= 0.5 for d in decays))) if keeps]


def _out_of_fold_threshold(scores: np.ndarray, folds: int, records: list[ClipRecord], quantile: float,
                           why: str = "too few held out: ") -> tuple[dict, dict]:
    what = (f"out-of-fold scores of all {len(records)} training-normal clips ({why}each scored by "
            f"a mixture fitted without it, {folds} folds)")
    return ({"quantile": quantile_threshold(scores, quantile, what, [r.domain for r in records])},
            {**score_statistics(scores), "clips": what})


def _save_gmm(config: GmmConfig, frontend, scoring, thresholds: dict, normal_scores: dict, pooling: dict,
              mixture: dict, train_count: int, val_count: int, started: float, **more) -> Detector:
    detector = Detector(
        kind="gmm", machine=config.machine, frontend=frontend, model=scoring,
        score_units="negative log-likelihood of the clip's GWRP-pooled, standardised log-mel levels"
                    + (" per view, standardised by held-out normals and combined by their max"
                       if len(pooling.get("views_fused", [])) > 1 else ""),
        thresholds=thresholds, threshold_rule="quantile", normal_scores=normal_scores,
        info={"outlier": None, "pooling": pooling, "mixture": mixture,
              "clips": {"train_normal": train_count, "val_normal": val_count, "train_outlier": 0, "val_outlier": 0},
              "epochs_run": 0, **more, "fit_seconds": round(time.perf_counter() - started, 1)})
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), **split_files(config)})
    return detector


def _fit_gmm_views(config: GmmConfig, frontend, train_records: list[ClipRecord], train_paths: list[str],
                   val_records: list[ClipRecord], val_paths: list[str], components: int, reason: str,
                   started: float, skipped: SkippedFiles) -> Detector:
    """The default GMM: one mixture per pooling view, views fused at score level, the fusion chosen by the battery.

    Every candidate of :data:`~asdkeras.models.gmm.VIEW_CANDIDATES` and every single pooling of
    :data:`~asdkeras.models.gmm.RECORDED_DECAYS` is scored out-of-fold on all training normals
    and on the battery's altered copies of up to :data:`asdkeras.battery.MAX_NORMALS` of them
    (each copy by the mixture of its clip's fold, so no score comes from a mixture that saw the
    clip); the candidate with the best battery figure is fitted on the training part and saved,
    every figure recorded. Each view holds a source mixture and one per section's target clips
    (:func:`~asdkeras.models.gmm.fit_group_mixtures`); the groups, the views and the threshold
    are standardised by the out-of-fold scores of all training normals (both domains weighted
    equally), which hold every target clip where a held-out part holds one or two.
    """
    import tensorflow as tf

    from asdkeras import battery
    from asdkeras.models.gmm import (RECORDED_DECAYS, VIEW_CANDIDATES, PoolingView, decay_tag, fit_group_mixtures,
                                     pooling_model, views_scoring_model)

    decays = sorted({d for pair in VIEW_CANDIDATES.values() for d in pair} | set(RECORDED_DECAYS), reverse=True)
    bands = config.features.n_mels
    pooler = pooling_model(*frontend.input_shape, decays)

    def by_decay(pooled: np.ndarray) -> dict[float, np.ndarray]:
        pooled = np.asarray(pooled, np.float64)
        return {d: pooled[:, i * bands:(i + 1) * bands] for i, d in enumerate(decays)}

    def pool_waveforms(clips: np.ndarray) -> dict[float, np.ndarray]:
        data = tf.data.Dataset.from_tensor_slices(clips).batch(8).map(frontend.from_waveforms)
        return by_decay(pooler.predict(data, verbose=0))

    train_raw = pooler.predict(frontend.dataset(train_paths), verbose=0)
    val_raw = pooler.predict(frontend.dataset(val_paths), verbose=0) if val_paths else train_raw[:0]
    records = train_records + val_records
    every_pooled = by_decay(np.r_[train_raw, val_raw])
    # the battery alters up to MAX_NORMALS training normals (decoded again, as the front-end reads them)
    subset = random_subset(list(range(len(records))), battery.MAX_NORMALS, np.random.default_rng(config.seed))
    readable, normals = battery.decode_readable([records[i].path for i in subset], config.channel, skipped)
    altered_of = np.array([i for i in subset if records[i].path in set(readable)], dtype=int)
    others = battery.other_machine_records(config.data_dir, config.subset, config.machine,
                                           per_type=battery.OTHER_CLIPS_PER_TYPE, seed=config.seed)
    _, other_clips = battery.decode_readable([r.path for r in others], config.channel, skipped)
    altered_pooled = ({name: pool_waveforms(clips) for name, clips in
                       battery.altered_clips(normals, battery.Context(other_clips), config.seed)}
                      if normals is not None else {})

    # out-of-fold scores of every normal and every altered copy, per pooling
    domains, sections = np.array([r.domain for r in records]), np.array([r.section for r in records])
    normal_oof, altered_oof, group_stats = {}, {}, {}
    for decay in decays:
        normal_oof[decay], altered_oof[decay], group_stats[decay], folds = group_out_of_fold_scores(
            every_pooled[decay], domains, sections, components, config.covariance_reg, config.seed,
            extra={name: (p[decay], altered_of) for name, p in altered_pooled.items()})

    def fused(pair, scores_of) -> np.ndarray:
        """Max over the pair's poolings of scores standardised by the out-of-fold normal scores."""
        return np.max([(scores_of(d) - normal_oof[d].mean()) / max(normal_oof[d].std(ddof=1), 1e-12) for d in pair],
                      axis=0)

    candidates = recorded = {}
    if altered_pooled:
        candidates = {name: {"decays": list(pair), "views": _views_of(pair),
                             **battery.battery_figures(fused(pair, normal_oof.get),
                                                       {k: fused(pair, lambda d: altered_oof[d][k]) for k in altered_pooled})}
                      for name, pair in VIEW_CANDIDATES.items()}
        recorded = {f"r = {d:g}": {"decays": [d], "views": _views_of((d,)),
                                    **battery.battery_figures(normal_oof[d], altered_oof[d])} for d in RECORDED_DECAYS}
        chosen, why = battery.choose(candidates)
    else:
        chosen, why = next(iter(VIEW_CANDIDATES)), "no clip could be altered: the first candidate"
    pair = VIEW_CANDIDATES[chosen]

    # the chosen views, fitted on the training part (the held-out part stays unseen, for the ensemble);
    # groups, views and the threshold are standardised by the out-of-fold scores of all training normals
    views, mixtures = [], {}
    train_pooled = by_decay(train_raw)
    for decay in pair:
        pooled = train_pooled[decay]
        mean, variance = pooled.mean(axis=0), np.maximum(pooled.var(axis=0), 1e-6)
        group_mixtures, mixtures[decay_tag(decay)] = fit_group_mixtures(
            (pooled - mean) / np.sqrt(variance), domains[:len(train_records)], sections[:len(train_records)],
            components, config.covariance_reg, config.seed)
        # a group with too few clips to standardise out of fold is left out, as it was in the battery
        kept = [g for g in group_mixtures if g in group_stats[decay]]
        left_out = set(group_mixtures) - set(kept)
        views.append(PoolingView(decay, mean, variance, {g: group_mixtures[g] for g in kept},
                                 {g: group_stats[decay][g] for g in kept}, float(np.mean(normal_oof[decay])),
                                 float(np.std(normal_oof[decay], ddof=1))))
    scoring = views_scoring_model(*frontend.input_shape, views, "max")
    thresholds, normal_record = _out_of_fold_threshold(fused(pair, normal_oof.get), folds, records,
                                                       config.threshold_quantile, why="")
    document = {"rule": battery.RULE, "kinds": battery.describe_battery(), "normals": int(len(altered_of)),
                "other_machine_clips": 0 if other_clips is None else int(len(other_clips)),
                "scored": f"out-of-fold ({folds} folds) over all {len(records)} training normals",
                "candidates": candidates, "single_poolings": recorded, "chosen": chosen, "reason": why}
    return _save_gmm(config, frontend, scoring, thresholds, normal_record,
                     {"decays": list(pair), "rule": "battery", "reason": f"{reason}: {chosen} ({why})",
                      "views": _views_of(pair), "views_fused": [decay_tag(d) for d in pair], "combine": "max"},
                     {"components_per_section": components, "covariance_reg": config.covariance_reg,
                      "sections": mixtures, "groups_scored_apart": sorted(views[0].mixtures),
                      "groups_left_out": sorted(left_out),
                      "group_statistics": {decay_tag(v.decay): {g: list(st) for g, st in v.group_stats.items()}
                                           for v in views},
                      "total_components": int(sum(len(m.weights) for v in views for m in v.mixtures.values()))},
                     len(train_paths), len(val_paths), started, battery=document, judged_per_condition=True)


def gmm_out_of_fold_scores(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                           covariance_reg: float, seed: int, folds: int = 5) -> tuple[np.ndarray, int]:
    """Each clip's score under a mixture fitted (standardisation included) without its fold.

    For the threshold when too few clips can be held out: the scores of clips a mixture was
    fitted on run low (each target clip is a component of its own), so a threshold on them flags
    nearly every new normal clip. Returns the scores and the number of folds used.
    """
    from asdkeras.models.gmm import mixture_nll

    folds = max(2, min(folds, len(pooled)))
    fold = np.empty(len(pooled), dtype=int)
    fold[np.random.default_rng(seed).permutation(len(pooled))] = np.arange(len(pooled)) % folds
    scores = np.empty(len(pooled))
    for f in range(folds):
        fit = fold != f
        mean, variance, (weights, means, chol, _) = _standardised_mixture(
            pooled[fit], domains[fit], sections[fit], components, covariance_reg, seed)
        scores[~fit] = mixture_nll((pooled[~fit] - mean) / np.sqrt(variance), weights, means, chol)
    return scores, folds


def group_out_of_fold_scores(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                             covariance_reg: float, seed: int, extra: dict, folds: int = 5):
    """Out-of-fold view scores of every clip under :func:`~asdkeras.models.gmm.fit_group_mixtures`.

    Per fold, the mixtures (standardisation included) are fitted without the fold; each clip of
    the fold gets its NLL under every group's mixture, and so does every ``extra`` vector
    (``{name: (vectors, owners)}``, each derived from clip ``owners[i]``: the battery's altered
    copies). Each group's NLLs are then standardised by the out-of-fold NLLs of the group's own
    clips, and a clip's score is its standardised NLL in its most likely group
    (:func:`~asdkeras.models.gmm.assigned_group_score`).
    A group with fewer than 2 scored clips is not standardised, and not used.

    Returns
    -------
    scores, extra_scores, group_stats, folds
        Scores of the clips, ``{name: scores}`` of the extras, group -> (mean, std) and the fold count.
    """
    from asdkeras.models.gmm import assigned_group_score, fit_group_mixtures, group_of

    folds = max(2, min(folds, len(pooled)))
    fold = np.empty(len(pooled), dtype=int)
    fold[np.random.default_rng(seed).permutation(len(pooled))] = np.arange(len(pooled)) % folds
    nll: dict[str, np.ndarray] = {}
    extra_nll: dict[str, dict[str, np.ndarray]] = {name: {} for name in extra}
    for f in range(folds):
        fit = fold != f
        mean, variance = pooled[fit].mean(axis=0), np.maximum(pooled[fit].var(axis=0), 1e-6)
        mixtures, _ = fit_group_mixtures((pooled[fit] - mean) / np.sqrt(variance), domains[fit], sections[fit],
                                         components, covariance_reg, seed)
        for group, mixture in mixtures.items():
            nll.setdefault(group, np.full(len(pooled), np.nan))[~fit] = mixture.nll((pooled[~fit] - mean) / np.sqrt(variance))
            for name, (vectors, owners) in extra.items():
                mine = fold[owners] == f
                scores = extra_nll[name].setdefault(group, np.full(len(vectors), np.nan))
                if mine.any():
                    scores[mine] = mixture.nll((vectors[mine] - mean) / np.sqrt(variance))
    groups = group_of(sections, domains)
    own = {g: v[groups == g] for g, v in nll.items()}
    stats = {g: (float(np.nanmean(v)), float(np.nanstd(v, ddof=1))) for g, v in own.items() if np.isfinite(v).sum() >= 2}

    def finite(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # not scored in a fold: not typical there
        return {g: np.where(np.isfinite(values[g]), values[g], np.inf) for g in stats}

    return (assigned_group_score(finite(nll), stats),
            {name: assigned_group_score(finite(v), stats) for name, v in extra_nll.items()}, stats, folds)


def _standardised_mixture(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                          covariance_reg: float, seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Per-dimension mean and variance of pooled vectors, and :func:`fit_mixture` on them standardised."""
    from asdkeras.models.gmm import fit_mixture

    mean, variance = pooled.mean(axis=0), np.maximum(pooled.var(axis=0), 1e-6)
    return mean, variance, fit_mixture((pooled - mean) / np.sqrt(variance), domains, sections, components,
                                       covariance_reg, seed)


@dataclass(frozen=True)
class Trainer:
    """A model kind's configuration class and training function."""

    config: type
    fit: Callable


TRAINERS = {"ae": Trainer(AutoencoderConfig, fit_autoencoder), "mobilenet": Trainer(MobileNetConfig, fit_mobilenet),
            "gmm": Trainer(GmmConfig, fit_gmm)}
"""Model kind -> its trainer. A new kind plugs in here."""


def make_config(kind: str, **options):
    """The configuration of ``kind`` from keyword options; None means "the default".

    An option that the kind does not take is a one-line error naming it (as ``--option``).
    """
    if kind not in TRAINERS:
        raise AsdError(f"unknown model kind '{kind}'; use one of {', '.join(TRAINERS)}")
    config_class = TRAINERS[kind].config
    accepted = {f.name for f in fields(config_class)}
    foreign = sorted(name for name, value in options.items() if value is not None and name not in accepted)
    if foreign:
        takers = [k for k, t in TRAINERS.items() if foreign[0] in {f.name for f in fields(t.config)}]
        raise AsdError(f"--{foreign[0].replace('_', '-')} does not apply to --model {kind}"
                       + (f" (it is an option of --model {', '.join(takers)})" if takers else ""))
    return config_class(**{name: value for name, value in options.items() if value is not None})


def options_for(kind: str, options: dict) -> dict:
    """The options of ``options`` that the configuration of ``kind`` takes (for fitting every kind at once)."""
    accepted = {f.name for f in fields(TRAINERS[kind].config)}
    return {name: value for name, value in options.items() if name in accepted}


def load_config(folder: str, kind: str):
    """The configuration the detector in ``folder`` was fitted with (its ``config.json``)."""
    import json

    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AsdError(f"{path}: cannot be read ({exc}); re-fit with 'python cli.py fit --model {kind}'") from None
    config_class = TRAINERS[kind].config
    values = {f.name: document[f.name] for f in fields(config_class) if f.name in document}
    if isinstance(values.get("features"), dict):
        values["features"] = LogMelConfig(**values["features"])
    if isinstance(values.get("stretch_range"), list):
        values["stretch_range"] = tuple(values["stretch_range"])
    return config_class(**values)


def fit_detector(kind: str, config, progress: Progress = no_progress, verbose: int = 0,
                 skipped: SkippedFiles | None = None) -> Detector:
    """Train and save the detector of ``kind`` described by ``config``; ``skipped`` as for the trainers."""
    return TRAINERS[kind].fit(config, progress, verbose, skipped)


def split_files(config: FitConfig) -> dict:
    """``{"split.json": ...}`` for a dataset without its own train/test split (MIMII, plain folders), else {}.

    The split is deterministic (:func:`asdkeras.data.layout.derived_split`); the record lets
    ``test`` check that it scores none of the clips the detector trained on.
    """
    base = machine_dir(config.data_dir, config.machine, config.subset)
    layout = detect_layout(base)
    if layout not in ("mimii", "plain"):
        return {}
    train, test = derived_split(base, config.machine, layout)
    return {SPLIT_FILE: {"layout": layout, "machine_folder": os.path.abspath(base),
                         "rule": DERIVED_SPLIT_RULE,
                         "train": [os.path.relpath(r.path, base) for r in train],
                         "test": [os.path.relpath(r.path, base) for r in test]}}


IN_SAMPLE_THRESHOLD = ("normal scores are measured on the clips the network trained on, corrected only where a domain "
                       f"has {MIN_HELD_OUT_PER_CONDITION} held out, so more normals than intended may be flagged")


def _note_held_out(held_out: list, trained: list, config: FitConfig, threshold: str = IN_SAMPLE_THRESHOLD) -> None:
    """Say so when too few training clips leave no (or too little) validation set, and what the
    threshold is then fitted on (``threshold``)."""
    if len(held_out) < MIN_HELD_OUT:
        logging.getLogger("asdkeras").info(
            f"{config.machine}: {len(trained) + len(held_out)} training clips leave {len(held_out)} held out "
            f"(validation fraction {config.validation_fraction:g} of each section and domain); "
            + ("no validation set: early stopping watches the training loss; " if not held_out else "")
            + threshold)


def _require_training_clips(paths: list[str], machine: str) -> None:
    if len(paths) < 2:
        raise AsdError(f"{machine}: only {len(paths)} readable training clip(s) left after skipping unreadable "
                       f"files; at least 2 are needed")
