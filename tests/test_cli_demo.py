"""End to end through the command line: ``demo`` fits, tests, exports and scores one machine type.

Apart from test_cli_e2e.py, so that the two workers of ``make test`` run them side by side.
"""

import json
import os

from click.testing import CliRunner

import cli
import pytest
from conftest import needs_weights

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")


def _run(*args):
    return CliRunner().invoke(cli.cli, [str(a) for a in args])


@needs_weights
def test_demo_runs_the_whole_system_and_prints_the_final_table(tiny_dataset, tmp_path):
    result = _run("demo", "--data", tiny_dataset, "--machines", "gearbox", "--epochs", "1", "--image-size", "64",
                  "--mobilenet-epochs", "1", "--augmented-clips", "4", "--models-dir", tmp_path / "models",
                  "--result-dir", tmp_path / "results", "--cache-dir", tmp_path / "cache",
                  "--tflite-dir", tmp_path / "tflite")
    assert result.exit_code == 0, result.output
    final = result.output.split("== every machine type")[1].splitlines()
    rows = [line.split()[:2] for line in final if line.startswith("gearbox")]
    # the ensemble has an int8 twin when the battery's choice holds MobileNetV2 (which has one)
    members = json.load(open(tmp_path / "models" / "gearbox" / "ensemble" / "ensemble.json"))["members"]
    twin = ("ensemble-int8",) if "mobilenet" in members else ()
    assert rows == [["gearbox", k] for k in ("ae", "mobilenet", "mobilenet-int8", "gmm", "ensemble", *twin,
                                            "ensemble-tflite-int8")]
    assert os.path.isfile(tmp_path / "tflite" / "gearbox_ensemble_int8_waveform.tflite")
    # The int8 file scored the same clips as its Keras model, in the same order. (Not the official
    # scores: with 3 + 3 clips per domain one swapped pair moves an AUC to 0 and the harmonic mean
    # with it. Parity proper is tested in test_export.py.)
    from scipy.stats import spearmanr

    from asdkeras.metrics import read_score_record

    lite = {r["path"]: r["score"] for r in read_score_record(tmp_path / "results" / "tflite" /
                                                              "scores_ensemble-tflite-int8_gearbox.csv")}
    # the int8 file is converted from the ensemble's quantisation-aware twin (its MobileNetV2 member
    # int8 as TFLite computes it, the others float): it scores as the twin does
    keras = {r["path"]: r["score"] for r in read_score_record(
        tmp_path / "results" / f"scores_ensemble{'-int8' if twin else ''}_gearbox.csv")}
    assert sorted(lite) == sorted(keras) and len(keras) == 36
    assert spearmanr([lite[p] for p in keras], list(keras.values()))[0] > 0.99
    assert "scored 36 clips with" in result.output
