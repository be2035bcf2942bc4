"""Clips per second of log-mel feature extraction: the tf.data pipeline against a per-file librosa loop.

The librosa loop is the DCASE baselines' way (``librosa.load`` then ``melspectrogram``,
``power_to_db`` and frame stacking, one file at a time). The tf.data side is what
``FeatureCache.ensure`` runs: parallel decoding (``tf.audio.decode_wav`` for DCASE-format WAV),
batched TF log-mel, vectors stacked. Both
produce the same 309 x 640 vectors per clip; nothing is written to disk in either.

    .venv/bin/python benchmarks/pipeline_throughput.py --data data --machine fan --clips 200
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from asdkeras.data.layout import scan_split  # noqa: E402
from asdkeras.features import LogMelConfig, log_mel_vectors  # noqa: E402
from asdkeras.decoding import waveform_dataset  # noqa: E402
from report_json import emit  # noqa: E402


def librosa_vectors(path: str, config: LogMelConfig) -> np.ndarray:
    y, sr = librosa.load(path, sr=None, mono=True)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.n_fft, hop_length=config.hop_length,
                                         n_mels=config.n_mels, power=2.0, htk=True, norm=None, pad_mode="reflect")
    logmel = librosa.power_to_db(mel, amin=config.amin, top_db=None)
    count = logmel.shape[1] - config.n_frames + 1
    vectors = np.zeros((count, config.vector_size), np.float32)
    for t in range(config.n_frames):
        vectors[:, config.n_mels * t: config.n_mels * (t + 1)] = logmel[:, t: t + count].T
    return vectors


def tfdata_dataset(paths: list[str], config: LogMelConfig, batch: int = 16) -> tf.data.Dataset:
    """The decoding and feature stages of ``FeatureCache.ensure``, ending in stacked vectors."""
    return (waveform_dataset(paths)
            .batch(batch)
            .map(lambda w: log_mel_vectors(w, config), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--machine", default="fan")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--out", default=None, help="Write the numbers as JSON here.")
    args = parser.parse_args()
    config = LogMelConfig()
    paths = [r.path for r in scan_split(args.data, args.machine, "train")][: args.clips]

    for path in paths:  # read every file once so that both sides find them in the page cache
        with open(path, "rb") as handle:
            handle.read()
    librosa_vectors(paths[0], config)  # librosa's and TensorFlow's lazy start-up costs stay out of the timing
    for _ in tfdata_dataset(paths[:16], config):
        pass

    def best_of_two(run) -> float:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    librosa_seconds = best_of_two(lambda: [librosa_vectors(p, config) for p in paths])
    tfdata_seconds = best_of_two(lambda: sum(int(b.shape[0]) for b in tfdata_dataset(paths, config)))

    result = {
        "clips": len(paths), "cpu_count": os.cpu_count(),
        "librosa_clips_per_s": round(len(paths) / librosa_seconds, 1),
        "tfdata_clips_per_s": round(len(paths) / tfdata_seconds, 1),
        "speedup": round(librosa_seconds / tfdata_seconds, 2),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
