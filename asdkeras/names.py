"""Every name the project gives a file or folder on disk, in one place and without TensorFlow.

Writers and readers (the report, the command line, the tests) call the same functions, so a
name changes here or nowhere. Folder defaults are the command line's defaults.
"""

from __future__ import annotations

import os

# Default folders (relative to the working directory), the command line's defaults.
MODELS_DIR = "saved_models"
"""Detectors, one folder each: ``<MODELS_DIR>/<machine>/<kind>/``."""
CACHE_DIR = "cache"
"""Feature, image and augmentation caches (safe to delete)."""
RESULT_DIR = "results"
"""DCASE CSVs, clip scores, metrics JSON, reports."""
TFLITE_DIR = "tflite"
"""Exported ``.tflite`` models and their ``.json`` sidecars."""
DATA_DIR = "data"
"""The dataset root (a DCASE tree: ``<DATA_DIR>/dev_data/<machine>/{train,test}``)."""

DEV_DATA = "dev_data"
EVAL_DATA = "eval_data"
SUBSETS = (DEV_DATA, EVAL_DATA)
"""DCASE's subsets below the dataset root."""

# The files of a detector folder.
MODEL_FILE = "model.keras"
DETECTOR_FILE = "detector.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
SPLIT_FILE = "split.json"
ENSEMBLE_FILE = "ensemble.json"

# Variants: further detectors a detector folder may hold, each in the sub-folder of its name.
INT8 = "int8"
VARIANTS = {INT8: "the quantisation-aware twin that the integer TFLite files are converted from"}
"""Variant name -> what it is. A variant is a detector of its own, saved in ``<folder>/<name>/``
(MobileNetV2 and an ensemble holding it have ``int8``); ``test`` evaluates it beside its detector
as ``<kind>-<name>``, the report shows it, the export converts from it."""


def detector_dir(models_dir: str, machine: str, kind: str) -> str:
    """The folder of the ``kind`` detector of ``machine``."""
    return os.path.join(models_dir, machine, kind)


def variant_dir(folder: str, variant: str) -> str:
    """The folder of a detector's ``variant`` (whether saved or not)."""
    return os.path.join(folder, variant)


def saved_variants(folder: str) -> dict[str, str]:
    """Variant name -> folder, for the variants saved in a detector folder (in :data:`VARIANTS` order)."""
    return {name: variant_dir(folder, name) for name in VARIANTS
            if os.path.isfile(os.path.join(variant_dir(folder, name), DETECTOR_FILE))}


def variant_result_name(name: str, variant: str) -> str:
    """The name ``test`` gives the results of a detector's variant (``mobilenet-int8``)."""
    return f"{name}-{variant}"


# Results.
def official_score_csv(result_dir: str, machine: str, section: str) -> str:
    """DCASE's per-section anomaly score CSV (the challenge's submission name)."""
    return os.path.join(result_dir, f"anomaly_score_{machine}_section_{section}_test.csv")


def official_decision_csv(result_dir: str, machine: str, section: str) -> str:
    """DCASE's per-section decision CSV (the challenge's submission name)."""
    return os.path.join(result_dir, f"decision_result_{machine}_section_{section}_test.csv")


def score_record_path(result_dir: str, model: str, machine: str) -> str:
    """``<result_dir>/scores_<model>_<machine>.csv``: one detector's clip scores, kept beside the official CSVs
    (which every detector of a machine overwrites)."""
    return os.path.join(result_dir, f"scores_{model}_{machine}.csv")


METRICS_PREFIX, METRICS_SUFFIX = "metrics_", ".json"


def metrics_path(result_dir: str, model: str, machine: str) -> str:
    """``<result_dir>/metrics_<model>_<machine>.json``, one detector's metrics document."""
    return os.path.join(result_dir, f"{METRICS_PREFIX}{model}_{machine}{METRICS_SUFFIX}")


def machines_with_metrics(file_names) -> list[str]:
    """The machines named by the metrics files among ``file_names`` (the inverse of :func:`metrics_path`)."""
    return sorted({n[:-len(METRICS_SUFFIX)].rsplit("_", 1)[1] for n in file_names
                   if n.startswith(METRICS_PREFIX) and n.endswith(METRICS_SUFFIX)})


def oe_sweep_path(result_dir: str, machine: str) -> str:
    """The outlier-exposure sweep's table."""
    return os.path.join(result_dir, f"oe_sweep_{machine}.json")


OE_SWEEP_DIR = "oe-sweep"
"""Sub-folder (of a machine's models, and of the results) of the outlier-exposure sweep's variants."""


def report_path(result_dir: str, machines) -> str:
    """The HTML report of one machine type, or of several."""
    machines = list(machines)
    return os.path.join(result_dir, f"report_{machines[0]}.html" if len(machines) == 1 else "report_all.html")


def ground_truth_csvs(folder: str, machine: str, section: str) -> tuple[str, str]:
    """DCASE's evaluation ground truth of a section: (label CSV, domain CSV)."""
    return (os.path.join(folder, f"ground_truth_{machine}_section_{section}_test.csv"),
            os.path.join(folder, f"ground_truth_domain_{machine}_section_{section}_test.csv"))


# TFLite.
def tflite_name(machine: str, kind: str, quantisation: str, waveform: bool) -> str:
    """``<machine>_<kind>_<quantisation>[_waveform].tflite``."""
    return f"{machine}_{kind}_{quantisation}{'_waveform' if waveform else ''}.tflite"


def sidecar_path(tflite_path: str) -> str:
    """The JSON sidecar beside a ``.tflite`` file."""
    return os.path.splitext(tflite_path)[0] + ".json"


def tflite_scores_csv(result_dir: str, machine: str, kind: str, quantisation: str) -> str:
    """Where the demo writes the clip scores of a TFLite model run through ``score``."""
    return os.path.join(result_dir, f"scores_{machine}_{kind}_{quantisation}.csv")
