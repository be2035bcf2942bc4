"""Saved detector folders: ``<models-dir>/<machine>/<kind>/``, written atomically.

A folder holds ``model.keras``, ``detector.json`` (kind, machine, threshold, feature settings),
``config.json`` (the full training configuration), ``history.json`` (per-epoch losses) and any
kind-specific files (the autoencoder's ``normalisation.json``).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Callable

from asdkeras.errors import AsdError

MODEL_FILE = "model.keras"
DETECTOR_FILE = "detector.json"


def detector_dir(models_dir: str, machine: str, kind: str) -> str:
    return os.path.join(models_dir, machine, kind)


def write_json(path: str, document) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w") as handle:
        json.dump(document, handle, indent=2, default=float)
        handle.write("\n")
    os.replace(tmp, path)


def save_atomically(final_dir: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_dir)`` to fill a fresh folder, then swap it into ``final_dir``.

    A failure while writing leaves any previous ``final_dir`` untouched.
    """
    parent = os.path.dirname(os.path.abspath(final_dir))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = f"{final_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    try:
        write(tmp_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    old_dir = f"{final_dir}.old-{os.getpid()}"
    if os.path.exists(final_dir):
        os.replace(final_dir, old_dir)
    os.replace(tmp_dir, final_dir)
    shutil.rmtree(old_dir, ignore_errors=True)
    return final_dir


def read_detector_json(folder: str) -> dict:
    path = os.path.join(folder, DETECTOR_FILE)
    if not os.path.isfile(path):
        raise AsdError(f"{folder}: no trained detector there (missing {DETECTOR_FILE}); "
                       f"train one first with 'python cli.py fit'")
    with open(path) as handle:
        return json.load(handle)
