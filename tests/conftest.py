"""Shared test set-up: quiet TensorFlow, offline ImageNet weights, a tiny synthetic dataset."""

from __future__ import annotations

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
REAL_AUDIO = os.path.join(SHARED, "realaudio")
KERAS_WEIGHTS = os.path.join(SHARED, "assets", "keras-models")
sys.path.insert(0, REPO)

from asdkeras.data.synth import Scale, generate  # noqa: E402

TINY = Scale(source_train=6, target_train=2, test_per_domain_label=3)
"""Per section: 6 + 2 training clips, 3 clips per domain and label in test (60 clips a machine)."""

needs_real_audio = pytest.mark.skipif(not os.path.isdir(REAL_AUDIO), reason="../shared/realaudio not present")
needs_weights = pytest.mark.skipif(not os.path.isdir(KERAS_WEIGHTS), reason="../shared/assets/keras-models not present")


HEAVIEST_FIRST = ("test_export.py", "test_cli_e2e.py", "test_thresholds.py", "test_quantise.py", "test_ensemble.py")
"""Modules that fit the most, scheduled first so that the two workers of ``make test`` end together."""


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return HEAVIEST_FIRST.index(name) if name in HEAVIEST_FIRST else len(HEAVIEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A DCASE tree with fan, gearbox and valve at the TINY scale, shared by the whole session."""
    root = str(tmp_path_factory.mktemp("synth"))
    generate(root, ["fan", "gearbox", "valve"], TINY, seed=7, workers=1)
    return root


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
