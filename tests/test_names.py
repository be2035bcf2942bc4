"""On-disk names: one TensorFlow-free module, used by writers and readers alike."""

import glob
import os
import re

from asdkeras import names
from conftest import REPO, loaded_after

SAVED_FILE_LITERAL = re.compile(r"""["'][^"'\s]+\.(?:json|keras|tflite|csv|html|npz)["']""")
"""A quoted file name with a saved-file extension (``"detector.json"``, ``f"metrics_{m}.json"``)."""


def test_names_import_without_tensorflow():
    assert loaded_after("import asdkeras.names") == set()


def test_no_saved_file_name_is_spelled_outside_the_names_module():
    sources = glob.glob(os.path.join(REPO, "asdkeras", "**", "*.py"), recursive=True) + [os.path.join(REPO, "cli.py")]
    offenders = []
    for path in sources:
        if path.endswith(os.path.join("asdkeras", "names.py")):
            continue
        for number, line in enumerate(open(path), 1):
            code = line.split("#", 1)[0]
            if SAVED_FILE_LITERAL.search(code) and not code.lstrip().startswith(('"""', "``")):
                offenders.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_readers_invert_the_writers_names(tmp_path):
    files = [os.path.basename(names.metrics_path(str(tmp_path), kind, machine))
             for kind in ("ae", "mobilenet-int8", "ensemble-tflite-int8") for machine in ("fan", "ToyCar")]
    assert names.machines_with_metrics(files + ["scores_ae_fan.csv", "report_fan.html"]) == ["ToyCar", "fan"]
    assert names.sidecar_path(os.path.join("out", names.tflite_name("fan", "ae", "int8", True))) == \
        os.path.join("out", "fan_ae_int8_waveform.json")
    folder = names.detector_dir(str(tmp_path), "fan", "mobilenet")
    assert names.saved_variants(folder) == {}  # no twin saved yet
    twin = names.variant_dir(folder, names.INT8)
    os.makedirs(twin)
    open(os.path.join(twin, names.DETECTOR_FILE), "w").write("{}")
    assert names.saved_variants(folder) == {names.INT8: twin}
    assert names.variant_result_name("mobilenet", names.INT8) == "mobilenet-int8"
