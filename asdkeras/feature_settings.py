"""The front-ends' settings (log-mel vectors, spectrogram images), importable without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel frame vectors as in the DCASE 2022 baseline autoencoder.

    Attributes
    ----------
    n_fft : int
        FFT and window length in samples (1024 = 64 ms at 16 kHz, periodic Hann).
    hop_length : int
        Frame step in samples (512 = 32 ms).
    n_mels : int
        Mel bands between 0 Hz and the Nyquist frequency (HTK mel scale).
    n_frames : int
        Consecutive frames stacked into one vector (vector size ``n_mels * n_frames``).
    amin : float
        Floor on the mel power before taking dB, as ``librosa.power_to_db(amin=...)``.
    """

    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    n_frames: int = 5
    amin: float = 1e-10

    @property
    def vector_size(self) -> int:
        return self.n_mels * self.n_frames

    def frames_per_clip(self, clip_samples: int) -> int:
        """Centred frames of a clip of ``clip_samples`` samples (313 for 160000 with the defaults)."""
        return 1 + clip_samples // self.hop_length

    def vectors_per_clip(self, clip_samples: int) -> int:
        """Vectors from a clip of ``clip_samples`` samples (309 for 160000 with the defaults)."""
        return self.frames_per_clip(clip_samples) - self.n_frames + 1


@dataclass(frozen=True)
class ImageConfig:
    """STFT spectrogram images for the MobileNetV2 detector.

    Attributes
    ----------
    window : int
        STFT window in samples (4096 = 256 ms at 16 kHz).
    hop_length : int
        Step in samples (2048 = 50 % overlap).
    image_size : int
        Output height and width in pixels.
    top_db : float
        Dynamic range kept below each clip's loudest bin; it maps to pixel values 0..255.
    """

    window: int = 4096
    hop_length: int = 2048
    image_size: int = 320
    top_db: float = 80.0
