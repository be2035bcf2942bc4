"""The demo's settings and a machine type's steps (its process plumbing: test_processes.py; its
end-to-end run: test_export_mobilenet.py, whose export checks use its models)."""

import os
import subprocess
import sys

import pytest

from asdkeras import demo
from asdkeras.demo import DemoSettings, StepOutcome
from asdkeras.metrics import Evaluation
from conftest import REPO


def test_settings_out_of_range_name_what_was_received():
    with pytest.raises(ValueError, match="Received: .*processes=0"):
        DemoSettings(processes=0)


def _fake_step(function, *args):
    """What each step returns, without running it (stands in for ``in_fresh_process``)."""
    if function is demo.evaluate_step:
        rows = [Evaluation(args[0], kind, [], [], 0.5) for kind in ("ae", "ensemble")]
        rows[1].notes = ["fan / ensemble: section 00 target: 5 of 10 normal clips flagged"]
        return StepOutcome(rows, [], {"bad.wav": "bad.wav: not audio"})
    if function is demo.export_and_score:
        return StepOutcome(Evaluation(args[0], "ensemble-tflite-int8", [], [], 0.5), ["scored 0 clips"], {})
    job = args[0]
    return StepOutcome("chose the GMM" if job.kind == "ensemble" else None, [f"saved {job.kind}"], {})


def test_each_step_of_a_machine_type_runs_in_a_fresh_process(monkeypatch):
    steps = []

    def fake(function, *args):
        steps.append((function.__name__, getattr(args[0], "kind", None)))
        return _fake_step(function, *args)

    monkeypatch.setattr(demo, "in_fresh_process", fake)
    outcome = demo.run_machine("fan", DemoSettings())
    assert steps == [("fit_step", "ae"), ("fit_step", "mobilenet"), ("fit_step", "gmm"), ("fit_step", "ensemble"),
                     ("evaluate_step", None), ("export_and_score", None)]
    assert outcome.lines == ["fan: chose the GMM", "note: fan / ensemble: section 00 target: 5 of 10 normal clips "
                             "flagged", "scored 0 clips"]  # the notes test would give
    assert outcome.skipped == {"bad.wav": "bad.wav: not audio"}
    assert [line.split()[1] for line in outcome.table.splitlines()[1:]] == ["ae", "ensemble", "ensemble-tflite-int8"]


def test_a_machine_types_own_process_imports_no_tensorflow():
    """It holds no model between its steps: their results come back as plain data."""
    code = ("import sys, test_demo; from asdkeras import demo; demo.in_fresh_process = test_demo._fake_step; "
            "demo.run_machine('fan', demo.DemoSettings()); print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
