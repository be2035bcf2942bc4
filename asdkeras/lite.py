"""Scoring with an exported TFLite model and its sidecar alone: no Keras model is built or loaded.

This is what a mobile inspection app does, in Python: read the sidecar, decode and convert the
clip to the sidecar's sample rate and length, feed the ``score`` signature, compare the score
with the sidecar's threshold. Feature-in models get their features from the TensorFlow ops of
:mod:`asdkeras.features` (the same ops the waveform-in models carry inside).

The module imports no TensorFlow: the interpreter is the standalone LiteRT runtime
(``ai_edge_litert``) where it is installed (the edge environment, :mod:`asdkeras.edge`), else
TensorFlow's ``tf.lite``. ``python cli.py score`` and ``python -m asdkeras.edge`` both run
:func:`run_scoring`, so they read, convert, score and decide alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.names import sidecar_path

KERNELS = ("sidecar", "builtin", "xnnpack")
"""Which kernels run the model: the sidecar's recommendation; TFLite's builtin kernels alone (the
arithmetic the int8 twin emulates); or the runtime's default delegate, XNNPack (faster; its int8
kernels round differently)."""

SCORE_HELP = {
    "tflite": "An exported .tflite file (its .json sidecar beside it).",
    "csv": "Write file,score,decision rows here (atomically).",
    "threads": "Interpreter threads [the runtime's default].",
    "long_clips": "Clips longer than the model's 10 s: crop to the first 10 s, or score overlapping 10 s windows "
                  "(hop 5 s, the last one ending with the clip) and take their max or mean.",
    "kernels": "sidecar: what the export recommends (builtin for int8 networks, whose quantisation-aware twin "
               "emulates them); builtin: TFLite's own kernels; xnnpack: the runtime's default delegate.",
    "strict": "Stop at the first unreadable audio file (default: report it, skip it, go on, exit 1 at the end).",
}
"""Help of the scoring options, shared by ``python cli.py score`` and ``python -m asdkeras.edge``."""

DEFAULT_KERNELS = "xnnpack"
"""What a sidecar without a ``kernels`` entry (exported before it existed) runs on: the runtime's default."""


def _runtime():
    """``(Interpreter class, OpResolverType, name)`` of the TFLite runtime available here."""
    try:
        from ai_edge_litert import interpreter as runtime

        return runtime.Interpreter, runtime.OpResolverType, "LiteRT"
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise AsdError("no TFLite runtime: install requirements-edge.txt (ai-edge-litert) "
                       "or requirements.txt (tensorflow)") from None
    return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, "TensorFlow Lite"


def open_interpreter(path: str, threads: int | None, kernels: str):
    """A TFLite interpreter of ``path`` on ``kernels`` ("builtin" or "xnnpack"), and the runtime's name."""
    interpreter, resolvers, name = _runtime()
    resolver = {"builtin": resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES, "xnnpack": resolvers.AUTO}[kernels]
    return interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver), name


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
    kernels : str
        One of :data:`KERNELS`; "sidecar" takes the sidecar's ``kernels`` entry.
    """

    path: str
    threads: int | None = None
    kernels: str = "sidecar"

    def __post_init__(self):
        if self.kernels not in KERNELS:
            raise AsdError(f"kernels must be one of {', '.join(KERNELS)}. Received: kernels={self.kernels!r}")
        self.sidecar = read_sidecar(self.path)
        if self.kernels == "sidecar":
            self.kernels = self.sidecar.get("kernels", DEFAULT_KERNELS)
        try:
            self.interpreter, self.runtime = open_interpreter(self.path, self.threads, self.kernels)
            self.runner = self.interpreter.get_signature_runner(self.sidecar.get("signature", "score"))
        except (ValueError, RuntimeError) as exc:
            raise AsdError(f"{self.path}: not a loadable TFLite model ({str(exc).splitlines()[0]}); "
                           f"export it again") from None
        (self.input_name, self.input_spec), = self.sidecar["inputs"].items()
        (self.output_name, self.output_spec), = self.sidecar["outputs"].items()
        self._frontend = None
        if self.sidecar["input"] != "waveform":
            try:
                from asdkeras.frontend import frontend_from_settings
            except ImportError:
                raise AsdError(f"{self.path}: a feature-in model needs TensorFlow's front-end, which is not installed "
                               f"here; use the waveform-in model beside it (*_waveform.tflite)") from None
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
                progress=lambda iterable, total: iterable, long_clips: str = "crop",
                level_problems: list | None = None) -> list[ScoredClip]:
    """Score audio files one by one; a file that cannot be read is passed to ``on_error`` and skipped.

    Files of another rate, channel count or length are converted as ``test`` converts them;
    ``long_clips`` as for :meth:`asdkeras.detector.Detector.score_files`. Silent and clipped clips
    are said in notes at the end (:func:`asdkeras.audio.level_notes`), or, with ``level_problems``,
    appended to it for the caller to say (a Ray actor scores a batch of a larger run).
    """
    import logging

    from asdkeras.audio import (aggregate_windows, is_long, level_notes, level_problem, level_statistics, load_clip,
                                load_windows)

    channel = detector.sidecar["frontend"].get("channel")
    scored, problems = [], ([] if level_problems is None else level_problems)
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
            problems.append(f"{path}: {problem}")
        score = aggregate_windows([detector.score_clip(clip) for clip in clips], long_clips)
        scored.append(ScoredClip(path, score, detector.decide(score)))
    if level_problems is None:
        for note in level_notes(problems, len(paths)):
            logging.getLogger("asdkeras").info(note)
    return scored


def write_scored_csv(path: str, scored: list[ScoredClip]) -> str:
    """``file,score,decision`` per clip (with a header), written atomically."""
    from asdkeras.atomic import write_text

    return write_text(path, "file,score,decision\n" + "".join(f"{c.path},{c.score!r},{c.decision}\n" for c in scored))


@dataclass
class ScoreRun:
    """What one scoring run did: the model, the files found, the clips scored, the files skipped."""

    detector: LiteDetector
    files: list[str]
    scored: list[ScoredClip]
    skipped: SkippedFiles

    def lines(self) -> list[str]:
        """``file,score,decision`` per scored clip, as printed on stdout."""
        return [f"{c.path},{c.score:.6g},{'anomaly' if c.decision else 'normal'}" for c in self.scored]

    def summary(self) -> str:
        """The closing line."""
        flagged = sum(c.decision for c in self.scored)
        return (f"scored {len(self.scored)} clips with {self.detector.path}: {flagged} anomalies "
                f"(threshold {self.detector.threshold:.4g}; {self.detector.runtime}, {self.detector.kernels} kernels)")


def run_scoring(paths: list[str], tflite_path: str, threads: int | None = None, long_clips: str = "crop",
                strict: bool = False, kernels: str = "sidecar", say=lambda line: None,
                progress=lambda iterable, total: iterable, scorer=None) -> ScoreRun:
    """Score audio files, and the audio files in folders, with a TFLite model and its sidecar.

    Parameters
    ----------
    paths : list of str
        Files and folders (searched recursively).
    tflite_path : str
        The ``.tflite`` file; its ``.json`` sidecar must be beside it.
    threads : int, optional
        Interpreter threads.
    long_clips : str
        One of :data:`asdkeras.audio.LONG_CLIP_MODES`.
    strict : bool
        Stop at the first unreadable file (an :class:`AsdError`) instead of skipping it.
    kernels : str
        One of :data:`KERNELS`.
    say : callable
        Receives each ``note: ...`` and ``error: ...`` line meant for stderr.
    progress : callable
        ``progress(iterable, total)`` wraps the loop over files (a progress bar).
    scorer : callable, optional
        Replaces :func:`score_paths` (same arguments and result), e.g. scoring on a Ray cluster
        (:func:`asdkeras.distributed.ray_scorer`).
    """
    from asdkeras.audio import conversion_note, is_long, long_clips_note
    from asdkeras.data.records import audio_files

    detector = LiteDetector(tflite_path, threads, kernels)
    files = audio_files(list(paths))
    rate, length = detector.sample_rate, detector.clip_samples
    cropped = [f for f in files if long_clips == "crop" or not is_long(f, length, rate)]
    for note in (conversion_note(cropped, rate, length, detector.sidecar["frontend"].get("channel")),
                 long_clips_note(files, long_clips, length, rate)):
        if note:
            say(f"note: {note}")
    skipped = SkippedFiles(strict, report=lambda message: say(f"error: {message}"))
    scored = (scorer or score_paths)(detector, files, skipped.add, progress, long_clips)
    return ScoreRun(detector, files, scored, skipped)
