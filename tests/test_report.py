"""The report command: every part of the page present, images embedded and saved, no TensorFlow imported."""

import base64
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cli
from conftest import REPO

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")


@pytest.fixture(scope="module")
def tested_run(tiny_dataset, tmp_path_factory):
    """An autoencoder and a pooled GMM of gearbox, fitted and tested on the tiny set."""
    work = tmp_path_factory.mktemp("report")
    common = ["--data", tiny_dataset, "--models-dir", work / "models", "--cache-dir", work / "cache"]
    runner = CliRunner()
    for model, extra in (("ae", ["--epochs", "2"]), ("gmm", [])):
        fitted = runner.invoke(cli.cli, [str(a) for a in ["fit", "--machine", "gearbox", "--model", model, *extra, *common]])
        assert fitted.exit_code == 0, fitted.output
        tested = runner.invoke(cli.cli, [str(a) for a in ["test", "--machine", "gearbox", "--model", model,
                                                          "--result-dir", work / "results", *common]])
        assert tested.exit_code == 0, tested.output
    return work, tiny_dataset


def test_report_page_holds_every_part_and_imports_no_tensorflow(tested_run):
    work, data = tested_run
    out = work / "report"
    script = (f"import sys; sys.path.insert(0, {REPO!r}); import cli; from click.testing import CliRunner; "
              f"r = CliRunner().invoke(cli.cli, ['report', '--machine', 'gearbox', '--result-dir', {str(work / 'results')!r}, "
              f"'--models-dir', {str(work / 'models')!r}, '--data', {data!r}, '--out', {str(out)!r}]); "
              f"print(r.output); assert r.exit_code == 0, r.output; "
              f"assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    page = open(out / "report_gearbox.html").read()
    # Tables: AUC per section for both detectors with the h-mean row, and decisions with thresholds.
    assert "AUC per section" in page and page.count("<th colspan='3'>") == 2 and "<th>h-mean</th>" in page
    assert "Decisions (means over sections)" in page and "false alarms src" in page
    # The default GMM's label-free choice: its battery, every candidate with its families and kinds.
    assert "Label-free choices" in page and "Pooled GMM: pseudo-anomaly battery" in page
    assert "mean + max" in page and "r = 0" in page and "transient" in page and "impact single" in page
    assert "&#10003;" in page
    for section in ("00", "01", "02"):
        for figure in ("roc", "scores", "spectrograms"):
            name = f"gearbox_section_{section}_{figure}.png"
            assert os.path.getsize(out / name) > 5000 and f"alt='{name}'" in page
    assert os.path.isfile(out / "gearbox_training.png") and "alt='gearbox_training.png'" in page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 10 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http://" not in page and "https://" not in page  # self-contained


def test_report_without_test_results_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli.cli, ["report", "--machine", "fan", "--result-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no test results for fan" in result.output and result.output.count("\n") == 1
