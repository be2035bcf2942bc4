"""``--ray``: fitting and scoring on a local Ray instance write what the local path writes.

The instance (``ray.init(num_cpus=2)``) is started by the fixture and stopped after the module.
"""

import json
import os
import re

import pytest
from click.testing import CliRunner

import cli
from asdkeras.jobs import FitJob, plan
from asdkeras.kinds import ENSEMBLE
from asdkeras.names import DETECTOR_FILE

pytestmark = pytest.mark.slow  # starts Ray and fits: the full suite only

TIMINGS = {"fit_seconds", "created", "saved_at"}


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _invoke(*args):
    result = CliRunner(mix_stderr=False).invoke(cli.cli, [*map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_scoring_on_ray_prints_writes_and_skips_as_locally(ray_instance, level_model, level_clips, tmp_path):
    local = _invoke("score", level_clips, "--tflite", level_model, "--csv", tmp_path / "local.csv")
    on_ray = _invoke("score", level_clips, "--tflite", level_model, "--csv", tmp_path / "ray.csv", "--ray", "local")
    assert on_ray == local and local[0] == 1  # two unreadable files, named, skipped
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()
    assert f"error: {level_clips / 'empty.wav'}: the file is empty" in on_ray[2]


def _leaves(document, prefix=""):
    """Path -> value of every leaf of a JSON document, timings left out."""
    if isinstance(document, dict):
        return {k: v for key, value in document.items() if key not in TIMINGS
                for k, v in _leaves(value, f"{prefix}/{key}").items()}
    if isinstance(document, list):
        return {k: v for i, value in enumerate(document) for k, v in _leaves(value, f"{prefix}[{i}]").items()}
    return {prefix: document}


def _documents(models_dir, machines):
    out = {}
    for machine in machines:
        with open(os.path.join(models_dir, machine, "gmm", DETECTOR_FILE)) as handle:
            out.update(_leaves(json.load(handle), machine))
    return out


def test_fitting_several_machine_types_on_ray_saves_what_the_local_path_saves(ray_instance, tiny_dataset, tmp_path):
    args = ["fit", "--machine", "fan,gearbox", "--model", "gmm", "--data", tiny_dataset,
            "--cache-dir", tmp_path / "cache"]
    local = _invoke(*args, "--models-dir", tmp_path / "local")
    on_ray = _invoke(*args, "--models-dir", tmp_path / "ray", "--ray", "local")
    assert local[0] == on_ray[0] == 0, on_ray[2]
    # the same fit; a worker's BLAS sums in another order (measured: 1e-15 relative)
    local_doc, ray_doc = _documents(tmp_path / "local", ["fan", "gearbox"]), _documents(tmp_path / "ray", ["fan", "gearbox"])
    assert local_doc == pytest.approx(ray_doc, rel=1e-9, abs=1e-12)
    def lines(out, folder):  # the paths and fit times aside
        return sorted(re.sub(r"\d+ s\)", "s)", line.replace(str(tmp_path / folder), "")) for line in out.splitlines())

    assert lines(local[1], "local") == lines(on_ray[1], "ray")
    notes = [line for line in local[2].splitlines() if line.startswith("note:")]
    assert notes and all(note in on_ray[2] for note in notes)


def test_a_fit_that_fails_on_ray_is_one_line(ray_instance, tiny_dataset, tmp_path):
    status, _, err = _invoke("fit", "--machine", "fan,pump", "--model", "gmm", "--data", tiny_dataset,
                             "--models-dir", tmp_path / "models", "--cache-dir", tmp_path / "cache", "--ray", "local")
    assert status == 2 and "pump" in err.strip().splitlines()[-1] and "Traceback" not in err


def test_the_plan_fits_each_ensemble_after_its_members():
    jobs = plan(["fan", "valve"], "all", {}, None, None, 0, "data", "models", "cache")
    assert [(j.machine, j.kind) for j in jobs][-1] == ("valve", ENSEMBLE)
    for index, job in enumerate(jobs):
        before = {(j.machine, j.kind) for j in jobs[:index]}
        assert all((job.machine, kind) in before for kind in job.after)
    assert FitJob("fan", "gmm").after == ()


def test_silent_and_clipped_clips_are_counted_over_the_run_not_per_batch(ray_instance, level_model, tmp_path, caplog,
                                                                          monkeypatch):
    """Five clipped clips in batches of two: one counting note, as the local loop says it."""
    import logging

    import numpy as np
    import soundfile as sf

    from asdkeras.distributed import ray_scorer
    from asdkeras.lite import run_scoring

    for i in range(5):
        sf.write(tmp_path / f"clipped_{i}.wav", np.clip(np.random.default_rng(i).normal(0, 2, 16_000), -1, 1),
                 16_000, subtype="FLOAT")
    notes = {}
    package = logging.getLogger("asdkeras")  # its notes do not propagate to the root (errors.show_notes)
    monkeypatch.setattr(package, "propagate", False)
    package.addHandler(caplog.handler)
    try:
        for name, scorer in (("local", None), ("ray", ray_scorer("local", workers=2, batch=2))):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="asdkeras"):
                run = run_scoring([str(tmp_path)], level_model, scorer=scorer)
            notes[name] = [r.getMessage() for r in caplog.records if "clipped" in r.getMessage()]
            assert len(run.scored) == 5
    finally:  # a failure must not leave this test's handler on the package's logger for the next tests
        package.removeHandler(caplog.handler)
    assert notes["ray"] == notes["local"] and len(notes["local"]) == 1 and notes["local"][0].startswith("5 of 5 clips")
