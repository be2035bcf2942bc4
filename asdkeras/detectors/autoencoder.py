"""The dense autoencoder on log-mel vectors (DCASE baseline style), trained with outlier exposure.

The kind ``ae``: its configuration, its trainer and everything else the project needs to know
about it (registered at the end). The network and its score layers are in
:mod:`asdkeras.models.autoencoder`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, ClassVar

from asdkeras.audio import CLIP_SAMPLES
from asdkeras.detectors import DetectorKind, register
from asdkeras.detectors.config import (LEARNING_RATE, MIN_HELD_OUT_PER_CONDITION, OUTLIER, OUTLIER_CLIPS, PATIENCE,
                                      TARGET_CLIPS, FitConfig, Option, outlier_records, setting)
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.feature_settings import LogMelConfig
from asdkeras.models.autoencoder_choices import LOSSES
from asdkeras.names import CONFIG_FILE, HISTORY_FILE
from asdkeras.pairing import resolve_outlier
from asdkeras.progress import Progress, no_progress
from asdkeras.splits import partition, split_validation

if TYPE_CHECKING:
    from asdkeras.detector import Detector

ERROR_POOLING_VIEWS = {"mean": ["steady"], "mean+peak": ["steady", "transient"]}
"""``--error-pooling`` -> the fault families its score keeps (the poolings themselves, as GWRP decays:
:data:`asdkeras.models.autoencoder_choices.ERROR_POOLINGS`)."""

REPORT_OUTLIERS = {"ToyCar": "gearbox", "ToyTrain": "slider", "bearing": "gearbox", "fan": "slider",
                   "gearbox": "fan", "slider": "valve", "valve": "slider"}
"""Machine type -> outlier machine type (the DCASE 2022 technical report, Table 2)."""


@dataclass(kw_only=True)
class AutoencoderConfig(FitConfig):
    """Everything an autoencoder fit depends on; saved as ``config.json`` beside the model.

    Counts are clips; ``target_clips`` caps the machine's training clips (the report: 3000),
    ``outlier_clips`` the outlier machine's (None: as many as the machine's, i.e. 1:1).
    ``margin`` is the hinge's m in normalised squared-error units. ``error_pooling``: how each
    clip's vector errors become its score (:data:`~asdkeras.models.autoencoder_choices.ERROR_POOLINGS`):
    ``mean+peak`` (default) keeps a steady and a transient view, ``mean`` is the baseline's clip mean.
    """

    kind: ClassVar[str] = "ae"
    held_out_per_condition: ClassVar[int] = MIN_HELD_OUT_PER_CONDITION
    outlier: str | None = setting("auto", OUTLIER)
    loss: str = setting("oe", Option("; ".join(f"{name} = {what}" for name, what in LOSSES.items()), choices=tuple(LOSSES)))
    epochs: int = setting(30, Option("maximum epochs", int, minimum=1))
    batch_size: int = setting(512, Option("batch size in vectors", int, minimum=1))
    learning_rate: float = setting(1e-3, LEARNING_RATE)
    patience: int = setting(5, PATIENCE)
    target_clips: int | None = setting(3000, TARGET_CLIPS)
    outlier_clips: int | None = setting(None, OUTLIER_CLIPS)
    margin: float = setting(1.0, Option("hinge margin m for --loss oe-hinge", float))
    error_pooling: str = setting("mean+peak", Option(
        "how a clip's vector errors become its score: mean (the baseline's clip mean, blind to short events) or "
        "mean+peak (beside it the peak, each judged per condition, fused by their maximum)", choices=tuple(ERROR_POOLING_VIEWS)))
    features: LogMelConfig = field(default_factory=LogMelConfig)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise AsdError(f"--loss must be one of {', '.join(LOSSES)}. Received: {self.loss!r}")
        if self.error_pooling not in ERROR_POOLING_VIEWS:
            raise AsdError(f"--error-pooling must be one of {', '.join(ERROR_POOLING_VIEWS)}. "
                           f"Received: {self.error_pooling!r}")

    def normal_cap(self) -> int | None:
        return self.target_clips

    def resolved_outlier(self) -> str | None:
        if self.loss == "mse":
            if self.outlier not in (None, "none", "auto"):
                raise AsdError(f"--loss mse trains the clear AE on normals only; drop --outlier {self.outlier} "
                               f"or choose --loss oe / oe-hinge")
            return None
        return resolve_outlier(REPORT_OUTLIERS, self.machine, self.outlier, self.machine_types())


SCORE_UNITS = {
    "mean": "mean squared reconstruction error of the clip's log-mel vectors, standardised by the normal errors "
            "of the operating condition the clip most likely comes from",
    "mean+peak": "the larger of two views of the clip's log-mel vector reconstruction errors, their mean and their "
                 "peak (GWRP r = 0.5), each standardised by the normal errors of the operating condition the clip "
                 "most likely comes from"}


def fit_autoencoder(config: AutoencoderConfig, progress: Progress = no_progress, verbose: int = 0,
                    skipped: SkippedFiles | None = None) -> Detector:
    """Train, threshold and save one autoencoder; returns the saved detector.

    ``skipped``: unreadable clips are recorded there and left out (else the first one raises);
    so for every trainer.
    """
    import keras

    from asdkeras.detector import Detector
    from asdkeras.fit import (cached_features, history_dict, judge_per_condition, note_held_out, require_training_clips,
                              split_files)
    from asdkeras.frontend import LogMelFrontend
    from asdkeras.models.autoencoder import (autoencoder_descriptor, autoencoder_loss, autoencoder_scoring_model,
                                             build_autoencoder)
    from asdkeras.pipeline import mixed_training_dataset, vector_statistics

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    train_records, val_records = config.normal_split()
    outlier_machine = config.resolved_outlier()
    outliers = outlier_records(config.data_dir, config.subset, outlier_machine,
                               config.outlier_clips or len(train_records) + len(val_records), config.seed + 1)
    frontend = LogMelFrontend(config.features, channel=config.channel)
    cache = frontend.cache(config.cache_dir)
    (train_records, train_normal), (val_records, val_normal), (outliers, outlier_paths) = cached_features(
        cache, [train_records, val_records, outliers], progress, skipped)
    require_training_clips(train_normal, config.machine)
    note_held_out(val_normal, train_normal, config)
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

    raw_model = autoencoder_scoring_model(network, *frontend.input_shape, config.features.n_frames,
                                          config.error_pooling)
    judged = judge_per_condition(raw_model, autoencoder_descriptor(), frontend, (train_records, train_normal),
                                 (val_records, val_normal), config.threshold_quantile, config.seed,
                                 confidence=config.threshold_confidence)
    detector = Detector(
        kind=config.kind, machine=config.machine, frontend=frontend, model=judged.model,
        score_units=SCORE_UNITS[config.error_pooling],
        thresholds=judged.thresholds, threshold_rule="quantile", normal_scores=judged.normal_scores,
        info={"loss": config.loss, "outlier": outlier_machine, "error_pooling": config.error_pooling,
              "views": ERROR_POOLING_VIEWS[config.error_pooling],
              **judged.info(),
              "clips": {"train_normal": len(train_normal), "val_normal": len(val_normal),
                        "train_outlier": len(train_outlier), "val_outlier": len(val_outlier)},
              "epochs_run": len(history.history["loss"]),
              "best_val_loss": float(min(history.history["val_loss"])) if val_data else None,
              "fit_seconds": round(time.perf_counter() - started, 1)})
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), HISTORY_FILE: history_dict(history),
                                    **split_files(config)})
    return detector


def calibrate_autoencoder(folder: str, config: AutoencoderConfig, progress: Progress = no_progress,
                          skipped: SkippedFiles | None = None) -> Detector:
    """The saved autoencoder judged again with the calibration clips of ``config`` (:mod:`asdkeras.calibration`)."""
    from asdkeras.calibration import judge_network_again
    from asdkeras.models.autoencoder import autoencoder_descriptor

    return judge_network_again(folder, config, autoencoder_descriptor(), progress, skipped)


KIND = register(DetectorKind(
    name="ae", title="AE", colour="#1f77b4", description="dense autoencoder on log-mel vectors",
    config=AutoencoderConfig, fit=fit_autoencoder, calibrate=calibrate_autoencoder,
    layer_modules=("asdkeras.models.autoencoder",),
    # the input vectors and their normalisation (its reconstruction target: quantising it to 256
    # levels put noise into every error; gearbox int8 decisions as Keras's rose from 96.7 % to
    # 99.2 % when kept float), and the score tail
    float_tail=("/stack_frames", "/normalise", "/error", "/clip_score"),
    demo_options=lambda settings: {"epochs": settings["epochs"]}, tie_rank=1))
