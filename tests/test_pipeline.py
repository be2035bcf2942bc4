import os

import numpy as np
import pytest

from asdkeras.data.layout import scan_split
from asdkeras.errors import AsdError
from asdkeras.features import LogMelConfig, log_mel_vectors
from asdkeras.audio import load_clip
from asdkeras.feature_cache import logmel_cache
from asdkeras.pipeline import clip_vectors_dataset, mixed_training_dataset, vector_statistics
from asdkeras.splits import split_validation


@pytest.fixture(scope="module")
def cached(tiny_dataset, tmp_path_factory):
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    fan = [r.path for r in scan_split(tiny_dataset, "fan", "train")][:6]
    valve = [r.path for r in scan_split(tiny_dataset, "valve", "train")][:4]
    cache = logmel_cache(cache_dir)
    return cache, fan, valve, cache.ensure(fan), cache.ensure(valve)


def test_cache_holds_log_mel_frames_and_is_reused(cached):
    cache, fan, _, fan_cache, _ = cached
    frames = np.load(fan_cache[0])
    assert frames.shape == (313, 128) and frames.dtype == np.float32
    vectors = next(iter(clip_vectors_dataset(fan_cache[:1]))).numpy()
    np.testing.assert_allclose(vectors, log_mel_vectors(load_clip(fan[0])).numpy(), atol=1e-3)  # dB, float32 batch vs single
    stamps = [os.stat(p).st_mtime_ns for p in fan_cache]
    assert cache.ensure(fan) == fan_cache
    assert [os.stat(p).st_mtime_ns for p in fan_cache] == stamps  # not recomputed


def test_cache_key_changes_with_feature_settings(cached):
    cache, fan, *_ = cached
    other = logmel_cache(cache.root, LogMelConfig(n_mels=64))
    assert other.path_for(fan[0]) != cache.path_for(fan[0])


def test_corrupt_clip_in_a_batch_is_a_one_line_error_naming_it(tmp_path, cached):
    cache, fan, *_ = cached
    bad = tmp_path / "section_00_source_train_normal_0000_x.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AsdError) as err:
        logmel_cache(str(tmp_path / "c")).ensure([fan[0], str(bad)])
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_mixed_dataset_holds_every_vector_once_with_labels(cached):
    _, _, _, fan_cache, valve_cache = cached
    batches = list(mixed_training_dataset(fan_cache, valve_cache, LogMelConfig(), batch_size=256, seed=0))
    vectors = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert vectors.shape == (10 * 309, 640)
    assert labels.sum() == 4 * 309 and set(np.unique(labels)) == {0.0, 1.0}
    first_batch_labels = batches[0][1].numpy()
    assert 0 < first_batch_labels.mean() < 1  # shuffled: outliers and normals share batches


def test_vector_statistics_match_numpy(cached):
    _, _, _, fan_cache, _ = cached
    mean, variance = vector_statistics(fan_cache)
    stacked = np.concatenate([v.numpy() for v in clip_vectors_dataset(fan_cache)]).astype(np.float64)
    np.testing.assert_allclose(mean, stacked.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(variance, stacked.var(axis=0), rtol=1e-4, atol=1e-4)


def test_validation_split_spans_every_section_and_domain():
    keys = [(s, "source") for s in ("00", "01", "02") for _ in range(50)] + \
           [(s, "target") for s in ("00", "01", "02") for _ in range(10)]
    mask = split_validation(keys, 0.1, seed=0)
    chosen = [k for k, m in zip(keys, mask) if m]
    assert len(chosen) == 18 and set(chosen) == set(keys)
    assert not split_validation(keys, 0.0, seed=0).any()


def test_graph_and_python_decoding_agree_and_keep_order(tmp_path, tiny_dataset):
    import soundfile as sf

    from asdkeras.decoding import decodes_in_graph, waveform_dataset

    dcase = sorted(r.path for r in scan_split(tiny_dataset, "gearbox", "train"))[:2]
    clip = load_clip(dcase[0])
    other_rate = str(tmp_path / "resample_me.wav")
    sf.write(other_rate, clip, 16_000, subtype="PCM_24")  # 24-bit: the Python path
    assert decodes_in_graph(dcase[0]) and not decodes_in_graph(other_rate)
    decoded = [w.numpy() for w in waveform_dataset([dcase[0], other_rate, dcase[1]])]
    np.testing.assert_allclose(decoded[0], clip, atol=1e-6)
    np.testing.assert_allclose(decoded[1], clip, atol=1e-4)
    np.testing.assert_allclose(decoded[2], load_clip(dcase[1]), atol=1e-6)


def test_truncated_dcase_wav_is_named_in_the_error(tmp_path, tiny_dataset):
    source = sorted(r.path for r in scan_split(tiny_dataset, "gearbox", "train"))[0]
    truncated = tmp_path / "section_00_source_train_normal_0000_cut.wav"
    truncated.write_bytes(open(source, "rb").read()[:200_000])  # header promises 320 000 bytes of samples
    try:
        logmel_cache(str(tmp_path / "c")).ensure([source, str(truncated)])
    except AsdError as err:
        assert str(truncated) in str(err) and "\n" not in str(err)
    else:  # a decoder may also accept the shorter data chunk and zero-pad it: then it must be a full clip
        assert np.load(logmel_cache(str(tmp_path / "c")).path_for(str(truncated))).shape == (313, 128)
