"""Read a DCASE 2022 Task 2 dataset tree and parse its file names into records.

Layout::

    <root>/dev_data/<machine>/train/section_00_source_train_normal_0000_<attr>.wav
    <root>/dev_data/<machine>/test/section_00_target_test_anomaly_0012_<attr>.wav
    <root>/eval_data/<machine>/train/section_03_source_train_normal_0000_<attr>.wav
    <root>/eval_data/<machine>/test/section_03_0000.wav        (anonymised, labels in CSVs)

The attribute string ``<attr>`` is kept verbatim and also split into key/value pairs where it
alternates keys and values (``volt_1.0_wt_100`` -> ``{"volt": "1.0", "wt": "100"}``).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field, replace

from asdkeras.errors import AsdError

MACHINE_TYPES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")
"""The seven DCASE 2022 Task 2 machine types."""

SUBSETS = ("dev_data", "eval_data")
SPLITS = ("train", "test")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

_LABELLED = re.compile(
    r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attr>.+))?$")
_ANONYMISED = re.compile(r"^section_(?P<section>\d{2})_(?P<index>\d+)$")

EXPECTED_PATTERN = ("section_XX_{source|target}_{train|test}_{normal|anomaly}_NNNN_<attributes>.wav "
                    "or section_XX_NNNN.wav")


@dataclass(frozen=True)
class ClipRecord:
    """One audio file of the dataset and what its name says.

    ``domain`` and ``label`` are None where the name is anonymised and no ground truth was applied.
    """

    path: str
    machine: str
    split: str
    section: str
    index: int
    domain: str | None = None
    label: str | None = None
    attributes: str = ""
    attribute_pairs: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    @property
    def is_anomaly(self) -> int | None:
        """1 for an anomaly, 0 for a normal clip, None when unknown."""
        return None if self.label is None else int(self.label == "anomaly")


def parse_attributes(attributes: str) -> dict[str, str]:
    """Split ``key_value_key_value`` into a dict; an irregular string gives ``{}``."""
    if not attributes:
        return {}
    tokens = attributes.split("_")
    if len(tokens) % 2:
        return {}
    return dict(zip(tokens[0::2], tokens[1::2]))


def parse_filename(path: str, machine: str, split: str) -> ClipRecord:
    """Parse a DCASE 2022 file name into a :class:`ClipRecord`.

    Raises
    ------
    AsdError
        The name matches neither the labelled nor the anonymised pattern.
    """
    stem, ext = os.path.splitext(os.path.basename(path))
    if ext.lower() not in AUDIO_EXTENSIONS:
        raise AsdError(f"{path}: not an audio file name; expected {EXPECTED_PATTERN}")
    match = _LABELLED.match(stem)
    if match:
        attributes = match["attr"] or ""
        return ClipRecord(path=path, machine=machine, split=match["split"], section=match["section"],
                          index=int(match["index"]), domain=match["domain"], label=match["label"],
                          attributes=attributes, attribute_pairs=parse_attributes(attributes))
    match = _ANONYMISED.match(stem)
    if match:
        return ClipRecord(path=path, machine=machine, split=split, section=match["section"],
                          index=int(match["index"]))
    raise AsdError(f"{path}: file name does not follow the DCASE 2022 pattern; expected {EXPECTED_PATTERN}")


def machine_dir(root: str, machine: str, subset: str = "dev_data") -> str:
    """The folder ``<root>/<subset>/<machine>``, checked to exist."""
    if subset not in SUBSETS:
        raise AsdError(f"unknown subset '{subset}'; use one of {', '.join(SUBSETS)}")
    subset_dir = os.path.join(root, subset)
    if not os.path.isdir(subset_dir):
        raise AsdError(f"{subset_dir}: no such folder; point --data at a DCASE tree holding {subset}/<machine>/")
    path = os.path.join(subset_dir, machine)
    if not os.path.isdir(path):
        present = ", ".join(list_machines(root, subset)) or "none"
        raise AsdError(f"{path}: no such machine folder (machines present: {present}); "
                       f"check --machine or generate it with 'python cli.py synth'")
    return path


def list_machines(root: str, subset: str = "dev_data") -> list[str]:
    """Machine folders under ``<root>/<subset>``, sorted; [] when the subset folder is missing."""
    subset_dir = os.path.join(root, subset)
    if not os.path.isdir(subset_dir):
        return []
    return sorted(d for d in os.listdir(subset_dir) if os.path.isdir(os.path.join(subset_dir, d)))


def scan_split(root: str, machine: str, split: str, subset: str = "dev_data") -> list[ClipRecord]:
    """All clips of one machine and split, sorted by file name.

    Raises
    ------
    AsdError
        The folder is missing, holds no audio file, or holds a file whose name does not parse.
    """
    if split not in SPLITS:
        raise AsdError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    folder = os.path.join(machine_dir(root, machine, subset), split)
    if not os.path.isdir(folder):
        raise AsdError(f"{folder}: no such folder; a DCASE machine folder holds train/ and test/")
    names = sorted(n for n in os.listdir(folder)
                   if os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS and not n.startswith("."))
    if not names:
        raise AsdError(f"{folder}: holds no audio file (.wav, .flac, .ogg); check the download or the path")
    return [parse_filename(os.path.join(folder, n), machine, split) for n in names]


def audio_files(paths: list[str]) -> list[str]:
    """The audio files named, and those found (recursively, sorted) in the folders named."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
                            if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS and not name.startswith("."))
        elif os.path.exists(path):
            found.append(path)
        else:
            raise AsdError(f"{path}: no such file or folder")
    if not found:
        raise AsdError(f"no audio file (.wav, .flac, .ogg) in {', '.join(paths)}")
    return found


def sections(records: list[ClipRecord]) -> list[str]:
    """The distinct section ids ("00", "01", ...) of some records, sorted."""
    return sorted({r.section for r in records})


def select(records: list[ClipRecord], **criteria) -> list[ClipRecord]:
    """Records whose fields equal every given value, e.g. ``select(rs, section="00", domain="target")``."""
    return [r for r in records if all(getattr(r, k) == v for k, v in criteria.items())]


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


def labelled_test_records(root: str, machine: str, subset: str = "dev_data",
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
        label_csv = os.path.join(ground_truth_dir, f"ground_truth_{machine}_section_{section}_test.csv")
        domain_csv = os.path.join(ground_truth_dir, f"ground_truth_domain_{machine}_section_{section}_test.csv")
        labels.update(load_ground_truth(label_csv))
        if os.path.isfile(domain_csv):
            domains.update(load_ground_truth(domain_csv))
    return apply_ground_truth(records, labels, domains)


@dataclass(frozen=True)
class MachineSummary:
    """Clip counts of one machine type in a dev tree."""

    machine: str
    sections: tuple
    train_source: int
    train_target: int
    test_normal: int
    test_anomaly: int
    test_unlabelled: int


def summarize(root: str, subset: str = "dev_data") -> list[MachineSummary]:
    """Counts per machine type of the tree under ``<root>/<subset>``."""
    machines = list_machines(root, subset)
    if not machines:
        raise AsdError(f"{os.path.join(root, subset)}: no machine folders; "
                       f"generate data with 'python cli.py synth --out {root}' or point --data at a DCASE tree")
    rows = []
    for machine in machines:
        train, test = scan_split(root, machine, "train", subset), scan_split(root, machine, "test", subset)
        rows.append(MachineSummary(
            machine, tuple(sections(train + test)),
            len(select(train, domain="source")), len(select(train, domain="target")),
            len(select(test, label="normal")), len(select(test, label="anomaly")), len(select(test, label=None))))
    return rows
