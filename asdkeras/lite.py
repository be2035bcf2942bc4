"""Scoring with an exported TFLite model and its sidecar alone: no Keras model is built or loaded.

This is what a mobile inspection app does, in Python: read the sidecar, decode and convert the
clip to the sidecar's sample rate and length, feed the ``score`` signature, compare the score
with the sidecar's threshold. Feature-in models get their features from the TensorFlow ops of
:mod:`asdkeras.features` (the same ops the waveform-in models carry inside).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from asdkeras.errors import AsdError
from asdkeras.names import sidecar_path


def read_sidecar(tflite_path: str) -> dict:
    """The JSON sidecar beside a ``.tflite`` file."""
    if not os.path.isfile(tflite_path):
        raise AsdError(f"{tflite_path}: no such TFLite model; export one with 'python cli.py export-tflite'")
    path = sidecar_path(tflite_path)
    if not os.path.isfile(path):
        raise AsdError(f"{path}: missing; the sidecar written beside the .tflite file by 'python cli.py export-tflite' "
                       f"is needed for the sample rate and threshold")
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError as exc:
        raise AsdError(f"{path}: damaged sidecar ({exc}); export the model again") from None


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Real values -> integers ``round(x / scale) + zero_point``, clipped to the integer type's range."""
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integers -> real values ``(q - zero_point) * scale``."""
    return (np.asarray(values, np.float64) - zero_point) * scale


@dataclass
class LiteDetector:
    """A TFLite model with its sidecar.

    Parameters
    ----------
    path : str
        The ``.tflite`` file; its sidecar is the ``.json`` beside it.
    threads : int, optional
        Interpreter threads (None: TFLite's default).
    """

    path: str
    threads: int | None = None

    def __post_init__(self):
        import tensorflow as tf

        self.sidecar = read_sidecar(self.path)
        try:
            self.interpreter = tf.lite.Interpreter(model_path=self.path, num_threads=self.threads)
            self.runner = self.interpreter.get_signature_runner(self.sidecar.get("signature", "score"))
        except (ValueError, RuntimeError) as exc:
            raise AsdError(f"{self.path}: not a loadable TFLite model ({str(exc).splitlines()[0]}); "
                           f"export it again") from None
        (self.input_name, self.input_spec), = self.sidecar["inputs"].items()
        (self.output_name, self.output_spec), = self.sidecar["outputs"].items()
        self._frontend = None
        if self.sidecar["input"] != "waveform":
            from asdkeras.frontend import frontend_from_settings

            self._frontend = frontend_from_settings(self.sidecar["frontend"])

    @property
    def sample_rate(self) -> int:
        return int(self.sidecar["sample_rate"])

    @property
    def clip_samples(self) -> int:
        return int(self.sidecar["clip_samples"])

    @property
    def threshold(self) -> float:
        return float(self.sidecar["threshold"])

    def score_clip(self, clip: np.ndarray) -> float:
        """Score of one clip: ``clip_samples`` float32 samples in [-1, 1] at ``sample_rate`` Hz."""
        clip = np.asarray(clip, np.float32).reshape(1, -1)
        if clip.shape[1] != self.clip_samples:
            raise ValueError(f"expected {self.clip_samples} samples, got {clip.shape[1]}")
        model_input = clip if self._frontend is None else self._frontend.from_waveforms(clip).numpy()
        spec = self.input_spec
        if "scale" in spec:
            model_input = quantize(model_input, spec["scale"], spec["zero_point"], np.dtype(spec["dtype"]))
        output = self.runner(**{self.input_name: model_input.astype(spec["dtype"])})[self.output_name]
        spec = self.output_spec
        if "scale" in spec:
            output = dequantize(output, spec["scale"], spec["zero_point"])
        return float(np.asarray(output).reshape(-1)[0])

    def decide(self, score: float) -> int:
        """1 (anomaly) when the score exceeds the sidecar's threshold, else 0."""
        return int(score > self.threshold)


@dataclass(frozen=True)
class ScoredClip:
    """One scored file."""

    path: str
    score: float
    decision: int


def score_paths(detector: LiteDetector, paths: list[str], on_error=lambda path, message: None,
                progress=lambda iterable, total: iterable, long_clips: str = "crop") -> list[ScoredClip]:
    """Score audio files one by one; a file that cannot be read is passed to ``on_error`` and skipped.

    Files of another rate, channel count or length are converted as ``test`` converts them;
    ``long_clips`` as for :meth:`asdkeras.detector.Detector.score_files`.
    """
    import logging

    from asdkeras.audio import aggregate_windows, is_long, level_problem, level_statistics, load_clip, load_windows

    channel = detector.sidecar["frontend"].get("channel")
    scored = []
    for path in progress(paths, len(paths)):
        try:
            if long_clips != "crop" and is_long(path, detector.clip_samples, detector.sample_rate):
                clips = load_windows(path, channel, detector.sample_rate, detector.clip_samples)
            else:
                clips = load_clip(path, channel=channel, sample_rate=detector.sample_rate,
                                  clip_samples=detector.clip_samples)[np.newaxis]
        except AsdError as exc:
            on_error(path, str(exc))
            continue
        problem = level_problem(*level_statistics(clips))
        if problem:
            logging.getLogger("asdkeras").info(f"{path}: {problem}; scored as it is")
        score = aggregate_windows([detector.score_clip(clip) for clip in clips], long_clips)
        scored.append(ScoredClip(path, score, detector.decide(score)))
    return scored


def write_scored_csv(path: str, scored: list[ScoredClip]) -> str:
    """``file,score,decision`` per clip (with a header), written atomically."""
    from asdkeras.atomic import write_text

    return write_text(path, "file,score,decision\n" + "".join(f"{c.path},{c.score!r},{c.decision}\n" for c in scored))
