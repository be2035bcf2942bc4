"""The registry of detector kinds: every kind from its own module, and a fourth one plugged in from one file."""

import os

import numpy as np
import pytest

from asdkeras import detectors
from asdkeras.errors import AsdError
from conftest import loaded_after


def test_the_built_in_kinds_come_from_their_modules():
    assert detectors.detector_kinds()[:4] == ("ae", "mobilenet", "gmm", "ensemble")
    assert detectors.model_kinds()[:3] == ("ae", "mobilenet", "gmm")
    for name in detectors.model_kinds():
        kind = detectors.get(name)
        assert kind.config.kind == name and kind.fit.__module__ == detectors.BUILTIN[name]
    assert detectors.result_title("mobilenet-int8") == ("MobileNetV2 int8 twin", "#ff9896")
    assert detectors.result_title("ensemble-tflite-int8") == ("ensemble-tflite-int8", None)
    assert detectors.kinds_taking("width") == ["mobilenet"]
    assert detectors.defaults_of("epochs") == {"ae": 30, "mobilenet": 5}


def test_fits_command_line_options_come_from_the_configuration_fields():
    options = {o.name: o for o in detectors.command_options()}
    # one place per default and per help: the kinds' configuration fields
    assert options["epochs"].help == "ae: maximum epochs [30]. mobilenet: maximum epochs of the head alone [5]."
    assert options["patience"].help == ("ae, mobilenet: epochs without validation improvement before stopping "
                                        "[ae 5; mobilenet 3].")
    assert options["outlier_clips"].help.endswith("[as many as the machine's].")
    assert options["background_noise_dir"].flag == "background-noise" and options["stretch_range"].option.type == "pair"
    assert "threshold_quantile" in options and "dropout" not in options  # a field without an Option is not on the line
    for name in detectors.model_kinds():
        marked = {spec.name for spec in __import__("dataclasses").fields(detectors.get(name).config)
                  if spec.metadata.get("option")}
        assert marked <= set(options) and name in options[sorted(marked)[0]].help


def test_an_option_is_validated_when_declared():
    from asdkeras.detectors.config import Option

    with pytest.raises(ValueError, match="type is int, float, str or 'pair'. Received: type=<class 'list'>"):
        Option("anything", list)


def test_a_fourth_kinds_options_join_the_command_line(level_kind):
    options = {o.name: o for o in detectors.command_options()}
    assert options["spread_floor"].help == "level: smallest spread of the normals' mean levels, in dB [1e-06]."
    assert options["threshold_quantile"].help.startswith("ae, mobilenet, gmm, level: ")
    assert detectors.describe_kinds().endswith("; level: Mean level")  # no description: its title


def test_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(AsdError, match="unknown model kind 'svm'; use one of ae, mobilenet, gmm, ensemble"):
        detectors.get("svm")


def test_a_kind_is_validated_when_built():
    with pytest.raises(ValueError, match="give both config and fit, or neither. Received"):
        detectors.DetectorKind(name="half", title="Half", colour="k", fit=print)


def test_the_registry_and_the_command_line_import_without_tensorflow_or_ray():
    statement = "import cli; from asdkeras import detectors; detectors.kinds()"
    assert loaded_after(statement, ("tensorflow", "keras", "ray")) == set()


@pytest.mark.slow
def test_a_fourth_kind_plugs_in_from_one_module(level_kind, tiny_dataset, tmp_path):
    """Fit, test and export through the project's own entry points, which know the kind only from the registry."""
    from asdkeras.detector import Detector
    from asdkeras.evaluate import evaluate
    from asdkeras.export import export_detector, representative_inputs
    from asdkeras.fit import fit_detector, load_config, make_config
    from asdkeras.lite import LiteDetector
    from asdkeras.audio import load_clip
    from asdkeras.data.layout import scan_split
    from asdkeras.names import tflite_name

    assert "level" in detectors.model_kinds() and detectors.get("level").title == "Mean level"
    config = make_config("level", machine="fan", data_dir=tiny_dataset, cache_dir=str(tmp_path / "cache"),
                         models_dir=str(tmp_path / "models"), validation_fraction=0.5)
    with pytest.raises(AsdError, match="--epochs does not apply to --model level"):
        make_config("level", machine="fan", epochs=3)
    fit_detector("level", config)
    assert load_config(config.folder(), "level") == config
    detector = Detector.load(config.folder())
    evaluation = evaluate(config.folder(), "fan", "level", tiny_dataset, str(tmp_path / "results"),
                          str(tmp_path / "cache"))
    assert len(evaluation.results) == 3 and all(0 <= r.auc_source <= 1 for r in evaluation.results)
    features, waveforms = representative_inputs(detector, tiny_dataset, "dev_data", str(tmp_path / "cache"), count=8)
    files = export_detector(detector, str(tmp_path / "tflite"), ["float32", "int8"], features, waveforms)
    assert {os.path.basename(f.path) for f in files} >= {tflite_name("fan", "level", "int8", True)}
    lite = LiteDetector(str(tmp_path / "tflite" / tflite_name("fan", "level", "float32", True)), threads=1)
    clip = load_clip(scan_split(tiny_dataset, "fan", "test")[0].path)
    keras_score = detector.score_waveforms(clip[None])[0]
    np.testing.assert_allclose(lite.score_clip(clip), keras_score, rtol=1e-4, atol=1e-4)
