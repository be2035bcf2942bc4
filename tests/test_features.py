import numpy as np
import librosa
import pytest
import tensorflow as tf

from asdkeras.features import (ImageConfig, LogMelConfig, log_mel_spectrogram, log_mel_vectors, mel_matrix,
                               spectrogram_image)

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def clip():
    t = np.arange(160_000) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * RNG.standard_normal(t.size)).astype(np.float32)


def test_log_mel_vectors_shape_matches_dcase_baseline(clip):
    vectors = log_mel_vectors(clip).numpy()
    assert vectors.shape == (309, 640) == (LogMelConfig().vectors_per_clip(160_000), LogMelConfig().vector_size)


def test_log_mel_matches_librosa_htk_within_0_1_db(clip):
    """Same parameters in librosa (HTK mel scale, no filter normalisation, reflect-centred frames).

    Stated tolerance: 0.1 dB anywhere. The filterbanks differ slightly in shape (TF builds the
    triangles on the mel axis, librosa on the Hz axis); the STFT alone agrees to 1e-3 dB.
    """
    ours = log_mel_spectrogram(clip).numpy()
    mel = librosa.feature.melspectrogram(y=clip, sr=16_000, n_fft=1024, hop_length=512, n_mels=128, power=2.0,
                                         center=True, pad_mode="reflect", htk=True, norm=None)
    reference = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) < 0.1
    power = np.abs(librosa.stft(clip, n_fft=1024, hop_length=512, center=True, pad_mode="reflect")) ** 2
    same_bank = librosa.power_to_db(power.T @ mel_matrix().numpy(), amin=1e-10, top_db=None)
    assert np.max(np.abs(ours - same_bank)) < 1e-3


def test_vectors_stack_consecutive_frames_in_baseline_order(clip):
    logmel = log_mel_spectrogram(clip).numpy()
    vectors = log_mel_vectors(clip).numpy()
    for t in (0, 100, 308):
        np.testing.assert_array_equal(vectors[t], logmel[t:t + 5].reshape(-1))


def test_batched_equals_single(clip):
    batch = np.stack([clip, clip[::-1].copy()])
    np.testing.assert_allclose(log_mel_vectors(batch).numpy()[1], log_mel_vectors(batch[1]).numpy(), atol=1e-4)
    batched, single = spectrogram_image(batch).numpy()[0], spectrogram_image(clip).numpy()
    # whole pixel values: a value within float error of x.5 may round either way in the two paths
    assert np.abs(batched - single).max() <= 1 and np.mean(batched != single) < 1e-3
    np.testing.assert_array_equal(single, np.round(single))


def test_spectrogram_image_range_shape_and_orientation():
    t = np.arange(160_000) / 16_000
    low = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    image = spectrogram_image(low).numpy()
    assert image.shape == (320, 320, 3)
    assert image.min() >= 0 and image.max() <= 255
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    row_energy = image[..., 0].mean(axis=1)
    assert np.argmax(row_energy) > 300  # 300 Hz sits near the bottom row (low frequencies at the bottom)
    small = spectrogram_image(low, ImageConfig(image_size=96)).numpy()
    assert small.shape == (96, 96, 3)


def test_front_ends_run_in_tf_data_and_convert_to_tflite(clip, tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(np.stack([clip, clip])).map(log_mel_vectors).batch(2)
    assert next(iter(dataset)).shape == (2, 309, 640)

    class FrontEnd(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 160_000], tf.float32)])
        def __call__(self, waveform):
            return {"vectors": log_mel_vectors(waveform), "image": spectrogram_image(waveform, ImageConfig(image_size=64))}

    module = FrontEnd()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner()
    out = runner(waveform=clip[None])
    np.testing.assert_allclose(out["vectors"][0], log_mel_vectors(clip).numpy(), atol=1e-2)
    np.testing.assert_allclose(out["image"][0], spectrogram_image(clip, ImageConfig(image_size=64)).numpy(), atol=0.5)


@pytest.mark.parametrize("frame_length, hop", [(1024, 512), (4096, 2048), (1024, 256), (1000, 300)])
def test_frames_equal_tf_signal_frame(frame_length, hop):
    """Block framing (hop dividing the frame length) and the general case, batched and single."""
    from asdkeras.features import frames

    waveform = np.random.default_rng(3).standard_normal((2, 16_100)).astype("float32")
    expected = tf.signal.frame(waveform, frame_length, hop).numpy()
    np.testing.assert_array_equal(frames(tf.constant(waveform), frame_length, hop).numpy(), expected)
    np.testing.assert_array_equal(frames(tf.constant(waveform[0]), frame_length, hop).numpy(), expected[0])
