"""Read a machine-sound dataset tree and parse its file names into records.

The DCASE 2022 Task 2 layout (also DCASE 2023 and 2024)::

    <root>/dev_data/<machine>/train/section_00_source_train_normal_0000_<attr>.wav
    <root>/dev_data/<machine>/test/section_00_target_test_anomaly_0012_<attr>.wav
    <root>/eval_data/<machine>/train/section_03_source_train_normal_0000_<attr>.wav
    <root>/eval_data/<machine>/test/section_03_0000.wav        (anonymised, labels in CSVs)

The attribute string ``<attr>`` is kept verbatim and also split into key/value pairs where it
alternates keys and values (``volt_1.0_wt_100`` -> ``{"volt": "1.0", "wt": "100"}``).

Other public layouts are read too (:mod:`asdkeras.data.layouts`, one class each, detected per machine folder): DCASE 2021
(``source_test/`` and ``target_test/`` folders), DCASE 2020 (``normal_id_00_00000000.wav``; the
machine ID is the section, one domain), MIMII and MIMII DUE (``<machine>/id_00/normal/``,
``abnormal/``, under any SNR-prefixed parent such as ``-6_dB_fan/``), and a plain folder
(``<machine>/normal/``, optional ``<machine>/abnormal/``, unlabelled clips directly in
``<machine>/``). The machine folder is ``<root>/<subset>/<machine>``, else ``<root>/<machine>``,
else ``<root>/<anything>_<machine>/<machine>``. MIMII and plain folders have no train/test
split: their layouts derive a deterministic one.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace

import numpy as np

from asdkeras.data.layouts import detect_layout
from asdkeras.data.records import ClipRecord, audio_files, parse_attributes, parse_filename  # noqa: F401 (re-exported)
from asdkeras.errors import AsdError
from asdkeras.names import DEV_DATA, SUBSETS, ground_truth_csvs

MACHINE_TYPES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")
"""The seven DCASE 2022 Task 2 machine types."""

SPLITS = ("train", "test")

def machine_dir(root: str, machine: str, subset: str = DEV_DATA) -> str:
    """The machine's folder: ``<root>/<subset>/<machine>``, ``<root>/<machine>`` or ``<root>/*_<machine>/<machine>``."""
    if subset not in SUBSETS:
        raise AsdError(f"unknown subset '{subset}'; use one of {', '.join(SUBSETS)}")
    for candidate in _machine_candidates(root, subset, machine):
        if os.path.isdir(candidate):
            return candidate
    if not os.path.isdir(root):
        raise AsdError(f"{root}: no such folder; point --data at a dataset root")
    present = ", ".join(list_machines(root, subset)) or "none"
    raise AsdError(f"{os.path.join(root, subset, machine)}: no such machine folder (machines present: {present}); "
                   f"check --machine or --data, or generate data with 'python cli.py synth'")


def _machine_candidates(root: str, subset: str, machine: str) -> list[str]:
    candidates = [os.path.join(root, subset, machine), os.path.join(root, machine)]
    if os.path.isdir(root):
        candidates += sorted(os.path.join(root, d, machine) for d in os.listdir(root) if d.endswith(f"_{machine}"))
    return candidates


def list_machines(root: str, subset: str = DEV_DATA) -> list[str]:
    """Machine folders of the dataset, sorted; [] when there are none.

    Those under ``<root>/<subset>`` when it exists; otherwise the folders of ``<root>`` (and of
    its SNR-prefixed MIMII folders) whose layout is recognised.
    """
    subset_dir = os.path.join(root, subset)
    if os.path.isdir(subset_dir):
        return sorted(d for d in os.listdir(subset_dir) if os.path.isdir(os.path.join(subset_dir, d)))
    if not os.path.isdir(root) or any(os.path.isdir(os.path.join(root, s)) for s in SUBSETS):
        return []
    found = set()
    for name in os.listdir(root):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        nested = [os.path.join(folder, d) for d in os.listdir(folder) if name.endswith(f"_{d}")]
        for candidate in nested or [folder]:
            if os.path.isdir(candidate) and detect_layout(candidate, strict=False):
                found.add(os.path.basename(candidate))
    return sorted(found)


def scan_split(root: str, machine: str, split: str, subset: str = DEV_DATA,
               missing_ok: bool = False) -> list[ClipRecord]:
    """All clips of one machine and split, sorted by file name, whatever the layout.

    ``missing_ok``: a split with no folder or no clip gives [] instead of the error.

    Raises
    ------
    AsdError
        The folder is missing, holds no audio file, or holds a file whose name does not parse.
    """
    if split not in SPLITS:
        raise AsdError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    base = machine_dir(root, machine, subset)
    return detect_layout(base).scan(base, machine, split, missing_ok)


def sections(records: list[ClipRecord]) -> list[str]:
    """The distinct section ids ("00", "01", ...) of some records, sorted."""
    return sorted({r.section for r in records})


def select(records: list[ClipRecord], **criteria) -> list[ClipRecord]:
    """Records whose fields equal every given value, e.g. ``select(rs, section="00", domain="target")``."""
    return [r for r in records if all(getattr(r, k) == v for k, v in criteria.items())]


def random_subset(items: list, count: int, rng: np.random.Generator) -> list:
    """``count`` items drawn at random with ``rng`` (all when there are fewer), kept in their order."""
    return [items[i] for i in np.sort(rng.choice(len(items), min(count, len(items)), replace=False))]


def load_ground_truth(csv_path: str) -> dict[str, str]:
    """Read an official ground-truth CSV (``section_03_0000.wav,1``, no header) into name -> value."""
    if not os.path.isfile(csv_path):
        raise AsdError(f"{csv_path}: no such ground-truth file; get it from the DCASE evaluation release")
    mapping: dict[str, str] = {}
    with open(csv_path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) < 2:
                raise AsdError(f"{csv_path}:{line_no}: expected 'filename,value', got '{','.join(row)}'")
            mapping[row[0].strip()] = row[1].strip()
    if not mapping:
        raise AsdError(f"{csv_path}: the ground-truth file is empty")
    return mapping


def apply_ground_truth(records: list[ClipRecord], labels: dict[str, str],
                       domains: dict[str, str] | None = None) -> list[ClipRecord]:
    """Give anonymised records their label (``1``/``0`` -> anomaly/normal) and, optionally, domain.

    Records whose file name is absent from ``labels`` are returned unchanged.
    """
    out = []
    for record in records:
        updated = record
        if record.filename in labels:
            value = labels[record.filename]
            if value not in ("0", "1"):
                raise AsdError(f"ground truth for {record.filename} is '{value}'; expected 0 or 1")
            updated = replace(updated, label="anomaly" if value == "1" else "normal")
        if domains and record.filename in domains:
            value = domains[record.filename]
            domain = {"0": "source", "1": "target"}.get(value, value)
            if domain not in ("source", "target"):
                raise AsdError(f"domain for {record.filename} is '{value}'; expected source or target")
            updated = replace(updated, domain=domain)
        out.append(updated)
    return out


def labelled_test_records(root: str, machine: str, subset: str = DEV_DATA,
                          ground_truth_dir: str | None = None) -> list[ClipRecord]:
    """Test records of a machine, labelled from the official ground-truth CSVs when a folder is given.

    The folder holds ``ground_truth_<machine>_section_XX_test.csv`` (labels) and, optionally,
    ``ground_truth_domain_<machine>_section_XX_test.csv`` (domains), as in the DCASE evaluation release.
    """
    records = scan_split(root, machine, "test", subset)
    if not ground_truth_dir:
        return records
    if not os.path.isdir(ground_truth_dir):
        raise AsdError(f"{ground_truth_dir}: no such ground-truth folder")
    labels, domains = {}, {}
    for section in sections(records):
        label_csv, domain_csv = ground_truth_csvs(ground_truth_dir, machine, section)
        labels.update(load_ground_truth(label_csv))
        if os.path.isfile(domain_csv):
            domains.update(load_ground_truth(domain_csv))
    return apply_ground_truth(records, labels, domains)


@dataclass(frozen=True)
class MachineSummary:
    """Clip counts of one machine type, and the layout its folder follows (its name in
    :mod:`asdkeras.data.layouts`, or "unknown")."""

    machine: str
    sections: tuple
    train_source: int
    train_target: int
    test_normal: int
    test_anomaly: int
    test_unlabelled: int
    layout: str


def summarize(root: str, subset: str = DEV_DATA) -> list[MachineSummary]:
    """Counts per machine type of the dataset under ``root`` (a missing train/ or test/ counts 0)."""
    machines = list_machines(root, subset)
    if not machines:
        raise AsdError(f"{os.path.join(root, subset)}: no machine folders; "
                       f"generate data with 'python cli.py synth --out {root}' or point --data at a dataset")
    rows = []
    for machine in machines:
        layout = detect_layout(machine_dir(root, machine, subset), strict=False)
        train, test = (scan_split(root, machine, split, subset, missing_ok=True) for split in SPLITS)
        rows.append(MachineSummary(
            machine, tuple(sections(train + test)),
            len(select(train, domain="source")), len(select(train, domain="target")),
            len(select(test, label="normal")), len(select(test, label="anomaly")), len(select(test, label=None)),
            layout.name if layout else "unknown"))
    return rows

