"""A minimal fourth detector kind, from this one module: a clip's mean log-mel level against the normals'.

The whole kind is here (configuration, trainer, registration); ``tests/test_detectors.py`` fits,
tests and exports it without any other file knowing it exists. It uses only built-in Keras
layers, so its saved model needs no layer module.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

from asdkeras.detectors import DetectorKind, register
from asdkeras.detectors.config import FitConfig, Option, setting
from asdkeras.feature_settings import LogMelConfig
from asdkeras.names import CONFIG_FILE
from asdkeras.progress import no_progress

NAME = "level"


@dataclass(kw_only=True)
class LevelConfig(FitConfig):
    """The log-mel front-end's settings; the score is the clip's mean level in units of the normals' spread."""

    kind: ClassVar[str] = NAME
    features: LogMelConfig = field(default_factory=lambda: LogMelConfig(n_mels=64))
    spread_floor: float = setting(1e-6, Option("smallest spread of the normals' mean levels, in dB", float, minimum=0,
                                               open_bounds=True))


def fit_level(config: LevelConfig, progress=no_progress, verbose: int = 0, skipped=None):
    import keras

    from asdkeras.detector import Detector
    from asdkeras.fit import cached_features
    from asdkeras.frontend import LogMelFrontend
    from asdkeras.models.inference import predict
    from asdkeras.scoring import quantile_threshold, score_statistics

    started = time.perf_counter()
    trained, held_out = config.normal_split()
    frontend = LogMelFrontend(config.features, channel=config.channel)
    (trained, trained_paths), (held_out, held_out_paths) = cached_features(
        frontend.cache(config.cache_dir), [trained, held_out], progress, skipped)
    frames = keras.Input(frontend.input_shape, name="logmel")
    pooled = keras.layers.GlobalAveragePooling1D(name="band_levels")(frames)
    score = keras.layers.Dense(1, name="level_score")(pooled)
    model = keras.Model(frames, keras.layers.Reshape(())(score))
    levels = np.concatenate([np.asarray(f).mean(axis=(1, 2)) for f in frontend.dataset(trained_paths)])
    mean, std = float(levels.mean()), max(float(levels.std()), config.spread_floor)
    bands = frontend.input_shape[1]
    model.get_layer("level_score").set_weights([np.full((bands, 1), 1 / (bands * std), "float32"),
                                                np.array([-mean / std], "float32")])
    scores = np.asarray(predict(model, frontend.dataset(held_out_paths)), np.float64).reshape(-1)
    what = "held-out normal clips' mean levels"
    thresholds = {"quantile": quantile_threshold(scores, config.threshold_quantile, what,
                                                 [r.domain for r in held_out])}
    detector = Detector(kind=NAME, machine=config.machine, frontend=frontend, model=model,
                        score_units="the clip's mean log-mel level in units of the training normals' spread",
                        thresholds=thresholds, threshold_rule="quantile",
                        normal_scores={**score_statistics(scores), "clips": what},
                        info={"outlier": None, "fit_seconds": round(time.perf_counter() - started, 1)})
    detector.save(config.folder(), {CONFIG_FILE: asdict(config)})
    return detector


KIND = register(DetectorKind(name=NAME, title="Mean level", colour="#8c564b", config=LevelConfig, fit=fit_level,
                             float_tail=("/level_score",)))
