"""A detector's feature front-end: its settings, the TF op on waveforms, and its cached features.

A front-end is what a detector's network reads: log-mel frames (autoencoder, pooled GMM),
spectrogram images (MobileNetV2), or the waveform itself (the ensemble, whose model holds its
members' front-ends). The same object computes features from raw waveforms (for
the waveform-in TFLite model), names its on-disk cache, and streams cached features of clips in
batches, so a detector scores files without knowing which kind of features it has.
New front-ends plug in by adding a class to :data:`FRONTENDS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Sequence

import tensorflow as tf

from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, load_clip
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.features import ImageConfig, LogMelConfig, log_mel_spectrogram, spectrogram_image
from asdkeras.decoding import AUTOTUNE, decodes_in_graph, waveform_dataset
from asdkeras.feature_cache import FeatureCache, existing_files, image_cache, load_cached, logmel_cache
from asdkeras.pipeline import image_dataset
from asdkeras.progress import Progress, no_progress


GRAPH_SCOPE = "frontend"
"""Name scope of a front-end's ops inside a model graph (the TFLite export keeps them float)."""


class _Settings:
    """What every front-end saves: its type, the sample rate, the clip length, the channel kept
    from multichannel files (None: averaged) and its parameters."""

    reads_waveforms: ClassVar[bool] = False

    def settings(self) -> dict:
        return {"type": self.name, "sample_rate": SAMPLE_RATE, "clip_samples": self.clip_samples,
                "channel": self.channel, **asdict(self.config)}


@dataclass(frozen=True)
class LogMelFrontend(_Settings):
    """Log-mel frames in dB, ``(frames, n_mels)`` per clip (313 x 128 for 10 s at 16 kHz)."""

    config: LogMelConfig = field(default_factory=LogMelConfig)
    clip_samples: int = CLIP_SAMPLES
    channel: int | None = None
    name: ClassVar[str] = "logmel"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.frames_per_clip(self.clip_samples), self.config.n_mels

    def from_waveforms(self, waveforms: tf.Tensor, pin: bool = False) -> tf.Tensor:
        """``(batch, clip_samples)`` float32 at ``SAMPLE_RATE`` Hz -> ``(batch, frames, n_mels)``.

        ``pin``: keep the front-end's constants exact through TFLite quantisation (see
        :func:`asdkeras.features.pinned_constant`).
        """
        return log_mel_spectrogram(waveforms, self.config, pin)

    def cache(self, root: str) -> FeatureCache:
        return logmel_cache(root, self.config, self.channel)

    def dataset(self, cache_paths: Sequence[str], batch_size: int = 8) -> tf.data.Dataset:
        """Batches of cached features, clips in the given order."""
        shape = list(self.input_shape)
        return (tf.data.Dataset.from_tensor_slices(list(cache_paths))
                .map(lambda p: load_cached(p, shape), num_parallel_calls=AUTOTUNE, deterministic=True)
                .batch(batch_size).prefetch(AUTOTUNE))


@dataclass(frozen=True)
class ImageFrontend(_Settings):
    """STFT spectrogram images ``(size, size, 3)`` with pixel values in [0, 255]."""

    config: ImageConfig = field(default_factory=ImageConfig)
    clip_samples: int = CLIP_SAMPLES
    channel: int | None = None
    name: ClassVar[str] = "image"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.image_size, self.config.image_size, 3

    def from_waveforms(self, waveforms: tf.Tensor, pin: bool = False) -> tf.Tensor:
        """``(batch, clip_samples)`` float32 at ``SAMPLE_RATE`` Hz -> ``(batch, size, size, 3)``; ``pin`` as above."""
        return spectrogram_image(waveforms, self.config, pin)

    def cache(self, root: str) -> FeatureCache:
        return image_cache(root, self.config, self.channel)

    def dataset(self, cache_paths: Sequence[str], batch_size: int = 32) -> tf.data.Dataset:
        return image_dataset(cache_paths, self.config, batch_size)


@dataclass(frozen=True)
class WaveformConfig:
    """No parameters: the model reads the samples themselves."""


@dataclass(frozen=True)
class _AudioFiles:
    """The "cache" of a waveform front-end: the audio files themselves, decoded when read."""

    channel: int | None = None

    def ensure(self, paths: Sequence[str], progress: Progress = no_progress,
               skipped: SkippedFiles | None = None) -> list[str]:
        """The readable files, in order; as :meth:`FeatureCache.ensure`, an unreadable one raises or is skipped.

        Files the in-graph decoder takes are trusted from their header; the others are decoded once.
        """
        skipped = SkippedFiles.or_strict(skipped)
        present = existing_files(paths, skipped)
        for path in progress(present, len(present)):
            if not decodes_in_graph(path, self.channel):
                try:
                    load_clip(path, self.channel)
                except AsdError as exc:
                    skipped.add(path, str(exc))
        return [p for p in paths if p not in skipped]


@dataclass(frozen=True)
class WaveformFrontend(_Settings):
    """The clip's samples, ``(clip_samples,)`` float32 at ``SAMPLE_RATE`` Hz in [-1, 1].

    For models whose graph holds their feature front-ends (the ensemble): scoring decodes the
    audio files and the model computes every feature it needs.
    """

    config: WaveformConfig = field(default_factory=WaveformConfig)
    clip_samples: int = CLIP_SAMPLES
    channel: int | None = None
    name: ClassVar[str] = "waveform"
    reads_waveforms: ClassVar[bool] = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.clip_samples,)

    def from_waveforms(self, waveforms: tf.Tensor, pin: bool = False) -> tf.Tensor:
        return waveforms

    def cache(self, root: str) -> _AudioFiles:
        return _AudioFiles(self.channel)

    def dataset(self, paths: Sequence[str], batch_size: int = 8) -> tf.data.Dataset:
        """Batches of decoded clips, in the given order."""
        return waveform_dataset(list(paths), channel=self.channel).batch(batch_size).prefetch(AUTOTUNE)


FRONTENDS = {frontend.name: frontend for frontend in (LogMelFrontend, ImageFrontend, WaveformFrontend)}
CONFIGS = {LogMelFrontend.name: LogMelConfig, ImageFrontend.name: ImageConfig, WaveformFrontend.name: WaveformConfig}


def frontend_from_settings(settings: dict):
    """Rebuild a front-end from :meth:`settings` as saved in ``detector.json``."""
    settings = dict(settings)
    kind = settings.pop("type", None)
    if kind not in FRONTENDS:
        raise AsdError(f"unknown feature front-end '{kind}' in detector.json; known: {', '.join(FRONTENDS)}")
    rate = settings.pop("sample_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise AsdError(f"the detector was trained at {rate} Hz but this asdkeras works at {SAMPLE_RATE} Hz; "
                       f"re-fit it with 'python cli.py fit'")
    clip_samples = settings.pop("clip_samples", CLIP_SAMPLES)
    channel = settings.pop("channel", None)
    try:
        return FRONTENDS[kind](CONFIGS[kind](**settings), clip_samples, channel)
    except TypeError as exc:
        raise AsdError(f"front-end settings in detector.json do not match this asdkeras ({exc}); "
                       f"re-fit the detector with 'python cli.py fit'") from None
