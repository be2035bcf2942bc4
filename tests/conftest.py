"""Shared test set-up: quiet TensorFlow, offline ImageNet weights, a tiny synthetic dataset."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
REAL_AUDIO = os.path.join(SHARED, "realaudio")
KERAS_WEIGHTS = os.path.join(SHARED, "assets", "keras-models")
sys.path.insert(0, REPO)

from asdkeras.processes import limit_threads  # noqa: E402  (standard library only: before TensorFlow loads)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker (make test runs one per core) computes on one thread: with TensorFlow's
    # default pools, two workers on two cores ran twice as many threads as cores.
    limit_threads(1)

import pytest  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from asdkeras.data.synth import Scale, generate  # noqa: E402
from asdkeras.names import sidecar_path  # noqa: E402

TINY = Scale(source_train=6, target_train=2, test_per_domain_label=3)
"""Per section: 6 + 2 training clips, 3 clips per domain and label in test (60 clips a machine)."""

needs_real_audio = pytest.mark.skipif(not os.path.isdir(REAL_AUDIO), reason="../shared/realaudio not present")
needs_weights = pytest.mark.skipif(not os.path.isdir(KERAS_WEIGHTS), reason="../shared/assets/keras-models not present")


HEAVIEST_FIRST = ("test_export_mobilenet.py", "test_thresholds.py", "test_cli_e2e.py", "test_export.py",
                  "test_quantise.py", "test_distributed.py", "test_ensemble.py", "test_mobilenet.py",
                  "test_real_audio.py", "test_synth.py")
"""Modules that take the most worker time (``--durations=0`` summed per module, session 28, on a machine
about a quarter faster than session 26's: about 255, 140, 135 (with ``calibrate``), 80, 60, 50, 50,
35 and 25 s), handed to the two workers of ``make test`` first so that they end together
(xdist's ``loadscope`` queues modules by their number of tests, whatever the collection order:
:func:`pytest_xdist_make_scheduler`). test_synth.py (about 20 s) comes after them: its difficulty check
reads the clips test_thresholds.py's worker renders first (:func:`synthetic_check_set`), and
scheduled early it waited for them."""


def _rank(module_path: str) -> int:
    name = os.path.basename(module_path.split("::")[0])
    return HEAVIEST_FIRST.index(name) if name in HEAVIEST_FIRST else len(HEAVIEST_FIRST)


class _HeaviestFirstQueue(collections.OrderedDict):
    """xdist's queue of modules, handing out the heaviest first (:data:`HEAVIEST_FIRST`, then the
    rest in xdist's own order: most tests first)."""

    def popitem(self, last=True):
        if last:
            return super().popitem(last=True)
        scope = min(self, key=_rank)  # min keeps the first of equal ranks
        return scope, self.pop(scope)


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` (``make test``), the heaviest modules first.

    xdist queues modules by their number of tests, so the one-test demo module and the two-test
    threshold module came last and one worker ran them alone: 160 % CPU of two cores in a
    clean-clone run of 23 minutes (session 9).
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    scheduler = LoadScopeScheduling(config, log)
    scheduler.workqueue = _HeaviestFirstQueue()
    return scheduler


def loaded_after(statement: str, packages=("tensorflow", "keras")) -> set[str]:
    """Which of ``packages`` a fresh interpreter in the repository has loaded after running ``statement``
    (what a module that must not import TensorFlow is checked with)."""
    code = f"import sys; {statement}; print(' '.join(p for p in {tuple(packages)!r} if p in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A DCASE tree with fan, gearbox and valve at the TINY scale, shared by the whole session."""
    root = str(tmp_path_factory.mktemp("synth"))
    generate(root, ["fan", "gearbox", "valve"], TINY, seed=7, workers=1)
    return root


SMALL_SEED = 0
"""Seed of :func:`synthetic_check_set` (the ``synth`` command's default)."""
CHECK_SCALE = Scale(source_train=30, target_train=10, test_per_domain_label=8)
"""The clips of every type the suite renders once (:func:`synthetic_check_set`): per section 30
source and 10 target training clips (DCASE's target count) and 8 test clips per domain and label,
216 a type. A clip's name and sound depend on its seed and position only, so these are the first
clips of each kind of the ``synth`` command's default ``small`` scale (300 a type), the clips a
user gets (test_synth.py checks the property). The difficulty check's kNN AUCs on them are within
0.02 of those on all 300 (session 27, seed 0: 0.71-0.85 on both)."""


@pytest.fixture(scope="session")
def synthetic_check_set(tmp_path_factory) -> str:
    """Every machine type at :data:`CHECK_SCALE`, seed :data:`SMALL_SEED`, written once for both
    workers of ``make test`` (1,512 clips, about 55 s to render in two processes beside the other worker).

    The synthetic data's difficulty check (test_synth.py) and the threshold check
    (test_thresholds.py) read it. The first worker to ask renders it under a lock in the folder
    both workers share; the other waits and reads it.
    """
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    root = str(shared / "synthetic-check-set")
    with open(str(shared / "synthetic-check-set.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(os.path.join(root, "complete")):
            from asdkeras.data.layout import MACHINE_TYPES

            generate(root, MACHINE_TYPES, CHECK_SCALE, seed=SMALL_SEED, workers=2, force=True)
            open(os.path.join(root, "complete"), "w").close()
    return root


@pytest.fixture
def level_kind():
    """The minimal fourth detector kind of ``tests/level_kind.py``, registered for the test only."""
    import level_kind
    from asdkeras import detectors

    detectors.register(level_kind.KIND)  # again, in case an earlier test unregistered it
    yield level_kind.KIND
    detectors.unregister(level_kind.NAME)


@pytest.fixture(scope="session", autouse=True)
def offline_keras_home(tmp_path_factory):
    """Point KERAS_HOME at a folder holding the shared ImageNet weights, so weights="imagenet" loads offline."""
    home = str(tmp_path_factory.mktemp("keras_home"))
    models = os.path.join(home, "models")
    os.makedirs(models)
    if os.path.isdir(KERAS_WEIGHTS):
        for name in os.listdir(KERAS_WEIGHTS):
            shutil.copy(os.path.join(KERAS_WEIGHTS, name), models)
    os.environ["KERAS_HOME"] = home
    yield home


# A waveform-in TFLite model built without fitting, and clips for it (scoring tests: edge, Ray).

LEVEL_RATE = 16_000
LEVEL_THRESHOLD = 0.3


@pytest.fixture(scope="session")
def level_model(tmp_path_factory):
    """A waveform-in TFLite model scoring a 1 s clip by its mean absolute level x 2, with its sidecar."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("edge_model")

    class Level(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, LEVEL_RATE], tf.float32, name="waveform")])
        def score(self, waveform):
            return {"score": 2.0 * tf.reduce_mean(tf.abs(waveform), axis=1)}

    module = Level()
    saved = str(folder / "saved")
    tf.saved_model.save(module, saved, signatures={"score": module.score})
    content = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["score"]).convert()
    path = str(folder / "level_waveform.tflite")
    open(path, "wb").write(content)
    json.dump({"signature": "score", "input": "waveform", "kernels": "xnnpack",
               "inputs": {"waveform": {"shape": [1, LEVEL_RATE], "dtype": "float32"}},
               "outputs": {"score": {"shape": [1], "dtype": "float32"}},
               "sample_rate": LEVEL_RATE, "clip_samples": LEVEL_RATE, "frontend": {"channel": None},
               "threshold": LEVEL_THRESHOLD}, open(sidecar_path(path), "w"))
    return path


@pytest.fixture
def level_clips(tmp_path):
    """Four readable clips (one stereo at 44.1 kHz, one 2.5 s long) and two broken files."""
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, level in (("quiet", 0.05), ("loud", 0.5)):
        sf.write(folder / f"{name}.wav", rng.uniform(-level, level, LEVEL_RATE), LEVEL_RATE, subtype="FLOAT")
    sf.write(folder / "stereo.wav", rng.uniform(-0.4, 0.4, (44_100, 2)), 44_100, subtype="PCM_16")
    sf.write(folder / "long.wav", rng.uniform(-0.2, 0.2, int(2.5 * LEVEL_RATE)), LEVEL_RATE, subtype="PCM_16")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("not audio")
    return folder
