"""The edge runtime's command line (``python -m asdkeras.edge``) against ``python cli.py score``.

Here it runs in the TensorFlow environment on a hand-built waveform-in model (no fit): same lines,
CSV, notes, errors and exit statuses as ``score``. ``tests/test_export.py`` runs it in its own
LiteRT environment, without TensorFlow, on every exported variant of every kind.
"""

import json
import sys

import pytest
from click.testing import CliRunner

import cli
from asdkeras import edge
from asdkeras.names import sidecar_path
from conftest import loaded_after

def _edge(args, capsys):
    status = edge.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _score(args):
    result = CliRunner(mix_stderr=False).invoke(cli.cli, ["score", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("options", [[], ["--long-clips", "max", "--kernels", "builtin", "--threads", "1"]])
def test_prints_writes_and_exits_as_score_does(level_model, level_clips, tmp_path, capsys, options):
    edge_csv, score_csv = tmp_path / "edge.csv", tmp_path / "score.csv"
    status, out, err = _edge([level_clips, "--tflite", level_model, "--csv", edge_csv, *options], capsys)
    expected = _score([level_clips, "--tflite", level_model, "--csv", score_csv, *options])
    assert (status, out, err) == expected
    assert status == 1  # two files skipped
    assert edge_csv.read_text() == score_csv.read_text()
    rows = dict(line.split(",", 1) for line in out.splitlines())
    assert rows[str(level_clips / "loud.wav")].endswith(",anomaly") and rows[str(level_clips / "quiet.wav")].endswith(",normal")
    assert f"error: {level_clips / 'empty.wav'}: the file is empty" in err and f"error: {level_clips / 'text.wav'}: cannot decode" in err
    assert "1 resampled 44100 Hz -> 16000 Hz; 1 multichannel, averaged to mono" in err
    assert "note: 1 clip(s) longer than 1 s" in err and "2 file(s) could not be read" in err
    assert "scored 4 clips" in err and "Traceback" not in err


def test_strict_stops_at_the_first_unreadable_file(level_model, level_clips, capsys):
    status, out, err = _edge([level_clips, "--tflite", level_model, "--strict"], capsys)
    assert status == 2 and out == "" and err.strip().splitlines()[-1].startswith(f"error: {level_clips / 'empty.wav'}")


def test_a_missing_sidecar_or_model_is_one_line(level_model, tmp_path, level_clips, capsys):
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(open(level_model, "rb").read())
    for model, says in ((lonely, "lonely.json: missing"), (tmp_path / "none.tflite", "no such TFLite model")):
        status, _, err = _edge([level_clips / "loud.wav", "--tflite", model], capsys)
        assert status == 2 and len(err.strip().splitlines()) == 1 and says in err


def test_a_feature_in_model_is_refused_without_the_tensorflow_front_end(level_model, level_clips, tmp_path, capsys, monkeypatch):
    model = tmp_path / "features.tflite"
    model.write_bytes(open(level_model, "rb").read())
    side = json.load(open(sidecar_path(level_model)))
    json.dump({**side, "input": "features", "frontend": {"type": "logmel"}}, open(sidecar_path(str(model)), "w"))
    monkeypatch.setitem(sys.modules, "asdkeras.frontend", None)  # as where TensorFlow is not installed
    status, _, err = _edge([level_clips / "loud.wav", "--tflite", model], capsys)
    assert status == 2 and err.strip().splitlines() == [
        f"error: {model}: a feature-in model needs TensorFlow's front-end, which is not installed here; "
        f"use the waveform-in model beside it (*_waveform.tflite)"]


def test_takes_the_options_of_score():
    """Option for option (``--result-dir`` needs the DCASE metrics and ``--ray`` a cluster: they stay with ``score``)."""
    edge_options = {o for action in edge.parser()._actions for o in action.option_strings} - {"-h", "--help"}
    score_options = {o for p in cli.cli.commands["score"].params for o in p.opts if o.startswith("--")}
    assert edge_options == score_options - {"--result-dir", "--ray"}


def test_imports_neither_tensorflow_nor_the_training_libraries():
    training = ("tensorflow", "keras", "librosa", "scipy", "sklearn", "tensorflow_io", "click")
    assert loaded_after("import asdkeras.edge", training) == set()
