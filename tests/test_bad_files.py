"""A bad file costs only itself: test, score and fit's feature cache skip it by name and go on.

Also the decode path: files the in-graph WAV decoder refuses but soundfile reads (bytes appended
after the last chunk) are read, and a fuzz test pushes mutated WAVs through the cache fill.
"""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.decoding import _tensorflow_reads_riff, decode_one, decodes_in_graph
from asdkeras.feature_cache import logmel_cache

GOOD = "section_00_source_test_normal_0100_a_1.wav"


def _tone(seconds=10.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, _tone(), 16000, subtype="PCM_16")
    return path


def test_appended_bytes_go_to_soundfile_instead_of_the_in_graph_decoder(wav):
    clean = decode_one(str(wav))
    assert _tensorflow_reads_riff(str(wav)) and decodes_in_graph(str(wav))
    with open(wav, "ab") as handle:
        handle.write(bytes([0xF2, 0x81, 0xFF, 0xC3] * 3))  # 12 non-ASCII bytes after the data chunk
    assert not _tensorflow_reads_riff(str(wav)) and not decodes_in_graph(str(wav))
    np.testing.assert_allclose(decode_one(str(wav)), clean, atol=1e-6)
    cached = logmel_cache(str(wav.parent / "cache")).ensure([str(wav)])
    assert len(cached) == 1 and os.path.isfile(cached[0])


def test_strict_skipped_files_raise_and_lenient_ones_collect(tmp_path):
    reported = []
    lenient = SkippedFiles(report=reported.append)
    lenient.add("a.wav", "a.wav: broken")
    lenient.add("a.wav", "a.wav: broken")
    assert len(lenient) == 1 and "a.wav" in lenient and reported == ["a.wav: broken"]
    assert "1 file(s) could not be read" in lenient.summary()
    with pytest.raises(AsdError, match="b.wav: broken"):
        SkippedFiles(strict=True).add("b.wav", "b.wav: broken")


def test_cache_fill_skips_a_bad_file_in_the_middle_of_a_batch(tmp_path, wav):
    good = [tmp_path / f"good_{i}.wav" for i in range(5)]
    for path in good:
        shutil.copy(wav, path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + os.urandom(200))
    paths = [str(p) for p in good[:2]] + [str(bad)] + [str(p) for p in good[2:]]
    skipped = SkippedFiles()
    cached = logmel_cache(str(tmp_path / "cache")).ensure(paths, skipped=skipped)
    assert len(cached) == 5 and all(os.path.isfile(c) for c in cached)
    assert list(skipped.messages) == [str(bad)] and str(bad) in skipped.messages[str(bad)]
    with pytest.raises(AsdError, match="bad.wav"):
        logmel_cache(str(tmp_path / "cache2")).ensure(paths)


def _mutations():
    return st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, 330_000)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=8)),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=_mutations())
def test_mutated_wavs_are_cached_or_skipped_by_name_never_a_traceback(tmp_path_factory, mutation):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "mutated.wav"
    sf.write(path, _tone(), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    kind, argument = mutation
    if kind == "truncate":
        data = data[:argument]
    elif kind == "append":
        data += argument
    else:
        for offset, value in argument:  # the header and the first samples
            data[offset % len(data)] = value
    path.write_bytes(bytes(data))
    skipped = SkippedFiles()
    cached = logmel_cache(str(folder / "cache")).ensure([str(path)], skipped=skipped)
    if cached:
        features = np.load(cached[0])
        assert features.shape == (313, 128) and np.all(np.isfinite(features))
    else:
        message = skipped.messages[str(path)]
        assert message.startswith(str(path)) and "\n" not in message


def _write_bad_clips(folder):
    """An empty, a truncated and a non-audio .wav among good clips, with DCASE names."""
    (folder / "section_00_source_test_anomaly_0900_a_1.wav").write_bytes(b"")
    good = sorted(folder.iterdir())[1]
    data = good.read_bytes()
    (folder / "section_01_target_test_normal_0901_a_1.wav").write_bytes(data[:2000])
    (folder / "section_02_source_test_anomaly_0902_a_1.wav").write_text("this is not audio\n" * 50)


@pytest.fixture(scope="module")
def bad_tree(tiny_dataset, tmp_path_factory):
    """A copy of the tiny gearbox and fan trees with three bad clips in gearbox's test folder
    and one in its training folder, and an autoencoder fitted on it (the bad training clip skipped)."""
    root = tmp_path_factory.mktemp("bad_tree")
    for machine in ("gearbox", "fan"):
        shutil.copytree(os.path.join(tiny_dataset, "dev_data", machine), root / "dev_data" / machine)
    _write_bad_clips(root / "dev_data" / "gearbox" / "test")
    (root / "dev_data" / "gearbox" / "train" / "section_00_source_train_normal_0999_a_1.wav").write_bytes(b"\x00" * 10)
    return root


def _run(*args):
    return CliRunner(mix_stderr=False).invoke(cli.cli, [str(a) for a in args])


def test_fit_skips_a_bad_training_clip_saves_the_detector_and_exits_1(bad_tree):
    common = ["--data", bad_tree, "--models-dir", bad_tree / "models", "--cache-dir", bad_tree / "cache"]
    result = _run("fit", "--machine", "gearbox", "--epochs", "1", *common)
    assert result.exit_code == 1, result.output + result.stderr
    assert "section_00_source_train_normal_0999_a_1.wav" in result.stderr
    assert "1 file(s) could not be read and were skipped" in result.stderr and "Traceback" not in result.stderr
    assert os.path.isfile(bad_tree / "models" / "gearbox" / "ae" / "detector.json")


def test_test_scores_the_good_clips_names_the_bad_ones_and_exits_1(bad_tree):
    common = ["--data", bad_tree, "--models-dir", bad_tree / "models", "--cache-dir", bad_tree / "cache"]
    results = bad_tree / "results"
    result = _run("test", "--machine", "gearbox", "--result-dir", results, *common)
    assert result.exit_code == 1, result.output + result.stderr
    for name in ("0900_a_1.wav: the file is empty", "0901_a_1.wav", "0902_a_1.wav: cannot decode audio"):
        assert name in result.stderr
    assert "3 file(s) could not be read" in result.stderr and "Traceback" not in result.stderr
    assert "anomaly_score_gearbox_section_00_test.csv lacks 1 skipped clip(s)" in result.stderr
    assert "official score" in result.output
    for section in ("00", "01", "02"):
        rows = open(results / f"anomaly_score_gearbox_section_{section}_test.csv").read().splitlines()
        assert len(rows) == 12  # every good clip; the bad ones are missing
    assert 0 < json.load(open(results / "metrics_ae_gearbox.json"))["official_score"] <= 1

    strict = _run("test", "--machine", "gearbox", "--strict", "--result-dir", bad_tree / "strict", *common)
    errors = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert strict.exit_code == 2 and len(errors) == 1 and "0900_a_1.wav" in errors[0]
    assert "Traceback" not in strict.stderr and "cropped or zero-padded" not in strict.stderr


def test_score_skips_bad_files_and_scores_silence_and_nan_is_rejected(bad_tree, tmp_path):
    exported = _run("export-tflite", "--machine", "gearbox", "--model", "ae", "--quant", "float32",
                    "--models-dir", bad_tree / "models", "--out", tmp_path / "tflite")
    assert exported.exit_code == 0, exported.output + exported.stderr
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "silence.wav", np.zeros(160000, np.float32), 16000, subtype="PCM_16")
    nan = _tone()
    nan[1000] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    shutil.copy(sorted((bad_tree / "dev_data" / "gearbox" / "test").glob("*normal*"))[0], folder / "good.wav")
    result = _run("score", folder, "--tflite", tmp_path / "tflite" / "gearbox_ae_float32_waveform.tflite",
                  "--csv", tmp_path / "scores.csv")
    assert result.exit_code == 1, result.output + result.stderr
    assert "nan.wav: holds NaN or infinite samples" in result.stderr
    assert "silence.wav: silent (every sample is zero); scored as it is" in result.stderr
    rows = open(tmp_path / "scores.csv").read().splitlines()
    assert rows[0] == "file,score,decision" and sorted(r.split(",")[0].rsplit("/", 1)[1] for r in rows[1:]) == \
        ["good.wav", "silence.wav"]


def test_level_problems_name_silence_and_clipping():
    from asdkeras.audio import level_problem, level_statistics

    assert level_problem(*level_statistics(np.zeros(100, np.float32))) == "silent (every sample is zero)"
    loud = np.clip(5 * _tone(1.0), -1, 1)
    assert level_problem(*level_statistics(loud)).startswith("clipped (")
    assert level_problem(*level_statistics(_tone(1.0))) is None


def _wav_header(format_tag, channels, rate, bits, data_size, payload):
    import struct

    block = max(1, channels * max(bits, 8) // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return (b"RIFF" + struct.pack("<I", (36 + data_size) & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_size) + payload)


_headers = st.builds(
    _wav_header,
    format_tag=st.sampled_from([1, 3, 2, 6, 7, 0xFFFE, 0, 0x1234]),
    channels=st.one_of(st.integers(0, 9), st.integers(0, 0xFFFF)),
    rate=st.one_of(st.sampled_from([1, 8, 999, 8000, 16000, 44100, 96000, 768001]), st.integers(0, 2 ** 32 - 1)),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64]),
    data_size=st.one_of(st.integers(0, 4000), st.just(2 ** 32 - 1), st.integers(0, 2 ** 32 - 1)),
    payload=st.binary(max_size=4000),
)


@settings(max_examples=int(os.environ.get("ASDKERAS_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=st.one_of(_headers, st.binary(max_size=3000),
                         _headers.flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))))
def test_the_loader_returns_audio_or_its_own_error_quickly_with_bounded_memory(tmp_path_factory, content):
    """Malformed WAV bytes: audio or the project's one-line error, within a second, memory bounded.

    ASDKERAS_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_bad_files.py -k loader  (the longer run)
    """
    import time
    import tracemalloc

    from asdkeras.audio import load_clip

    path = tmp_path_factory.mktemp("loader") / "fuzz.wav"
    path.write_bytes(content)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        clip = load_clip(str(path))
        assert clip.shape == (160000,) and clip.dtype == np.float32 and np.all(np.isfinite(clip))
    except AsdError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 200 * 2 ** 20
