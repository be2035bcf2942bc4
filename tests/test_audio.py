import glob
import os

import numpy as np
import pytest
import soundfile as sf

from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, describe, fit_length, load_clip, resample, write_wav_atomic
from asdkeras.errors import AsdError
from conftest import REAL_AUDIO, needs_real_audio


def _tone(freq_hz, seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq_hz * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _peak_hz(x, rate=SAMPLE_RATE):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


@needs_real_audio
def test_real_dcase_clips_load_as_10s_mono_float():
    toycar = sorted(glob.glob(os.path.join(REAL_AUDIO, "dcase2020-dev", "ToyCar", "test", "*.wav")))[0]
    assert describe(toycar).frames == 176000  # ToyCar clips are 11 s: cropped to 10 s
    clip = load_clip(toycar)
    assert clip.shape == (CLIP_SAMPLES,) and clip.dtype == np.float32
    assert 0 < np.abs(clip).max() <= 1.0


@needs_real_audio
def test_real_mimii_8_channel_downmix_and_channel_choice():
    path = sorted(glob.glob(os.path.join(REAL_AUDIO, "mimii-0dB", "fan", "id_00", "normal", "*.wav")))[0]
    assert describe(path).channels == 8
    raw, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_allclose(load_clip(path), raw[:CLIP_SAMPLES].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(load_clip(path, channel=3), raw[:CLIP_SAMPLES, 3], atol=1e-6)
    with pytest.raises(AsdError, match="has 8 channel"):
        load_clip(path, channel=8)


def test_other_rate_is_resampled_and_keeps_pitch(tmp_path):
    path = str(tmp_path / "tone_44k.wav")
    sf.write(path, _tone(1000.0, 10.0, 44100), 44100, subtype="PCM_24")
    clip = load_clip(path)
    assert clip.shape == (CLIP_SAMPLES,)
    assert abs(_peak_hz(clip) - 1000.0) < 1.0


def test_short_file_is_zero_padded_and_long_file_cropped(tmp_path):
    short = str(tmp_path / "short.wav")
    sf.write(short, _tone(500, 3.0, SAMPLE_RATE), SAMPLE_RATE)
    clip = load_clip(short)
    assert clip.shape == (CLIP_SAMPLES,) and np.all(clip[3 * SAMPLE_RATE:] == 0)
    assert fit_length(np.ones(200_000, np.float32)).shape == (CLIP_SAMPLES,)


@pytest.mark.parametrize("name, subtype", [("tone.flac", "PCM_16"), ("tone.ogg", "VORBIS")])
def test_flac_and_ogg_go_through_tensorflow_io(tmp_path, name, subtype):
    path = str(tmp_path / name)
    sf.write(path, _tone(440.0, 10.0, SAMPLE_RATE, channels=2), SAMPLE_RATE, subtype=subtype)
    clip = load_clip(path)
    assert clip.shape == (CLIP_SAMPLES,) and abs(_peak_hz(clip) - 440.0) < 1.0
    assert 0.4 < np.abs(clip).max() <= 0.55


def test_corrupt_ogg_error_is_one_clean_line(tmp_path):
    path = tmp_path / "bad.ogg"
    path.write_bytes(b"OggS" + b"x" * 100)
    with pytest.raises(AsdError) as err:
        load_clip(str(path))
    assert str(path) in str(err.value) and "function_node" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEnot really audio data", "cannot decode"),
])
def test_corrupt_and_empty_files_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AsdError) as err:
        load_clip(str(path))
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_zero_length_and_too_short_files_are_refused(tmp_path):
    empty = str(tmp_path / "zero.wav")
    sf.write(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AsdError, match="no audio samples"):
        load_clip(empty)
    tiny = str(tmp_path / "tiny.wav")
    sf.write(tiny, np.zeros(800, np.float32), SAMPLE_RATE)
    with pytest.raises(AsdError, match="only 0.05 s"):
        load_clip(tiny)


def test_missing_file_and_nan_samples(tmp_path):
    with pytest.raises(AsdError, match="no such file"):
        load_clip(str(tmp_path / "absent.wav"))
    path = str(tmp_path / "nan.wav")
    data = _tone(100, 2.0, SAMPLE_RATE)
    data[5] = np.nan
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AsdError, match="NaN"):
        load_clip(path)


def test_write_wav_atomic_leaves_no_partial_file(tmp_path):
    path = str(tmp_path / "out.wav")
    write_wav_atomic(path, _tone(300, 1.0, SAMPLE_RATE))
    assert os.listdir(tmp_path) == ["out.wav"]
    info = describe(path)
    assert (info.sample_rate, info.channels, info.frames) == (SAMPLE_RATE, 1, SAMPLE_RATE)


def test_resample_identity():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    assert resample(x, SAMPLE_RATE) is x


def test_conversion_note_says_what_was_converted(tmp_path):
    from asdkeras.audio import conversion_note

    dcase = str(tmp_path / "ok.wav")
    sf.write(dcase, np.zeros(CLIP_SAMPLES, np.float32), SAMPLE_RATE, subtype="PCM_16")
    assert conversion_note([dcase]) is None
    other = str(tmp_path / "other.wav")
    sf.write(other, np.zeros((44100 * 12, 2), np.float32), 44100)
    assert conversion_note([dcase, other]) == ("2 files read: 1 resampled 44100 Hz -> 16000 Hz; "
                                               "1 multichannel, averaged to mono; 1 cropped or zero-padded to 10 s")
