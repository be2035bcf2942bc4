import os

import pytest

from asdkeras.errors import AsdError
from asdkeras.store import read_detector_json, save_atomically, write_json


def test_failed_save_keeps_the_previous_detector(tmp_path):
    folder = str(tmp_path / "fan" / "ae")
    save_atomically(folder, lambda d: write_json(os.path.join(d, "detector.json"), {"threshold": 1.0}))

    def broken(d):
        write_json(os.path.join(d, "detector.json"), {"threshold": 2.0})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_atomically(folder, broken)
    assert read_detector_json(folder)["threshold"] == 1.0
    assert os.listdir(tmp_path / "fan") == ["ae"]
    save_atomically(folder, lambda d: write_json(os.path.join(d, "detector.json"), {"threshold": 3.0}))
    assert read_detector_json(folder)["threshold"] == 3.0 and os.listdir(tmp_path / "fan") == ["ae"]


def test_missing_detector_is_a_clear_error(tmp_path):
    with pytest.raises(AsdError, match="train one first"):
        read_detector_json(str(tmp_path))
