"""Read a machine-sound dataset tree and parse its file names into records.

The DCASE 2022 Task 2 layout (also DCASE 2023 and 2024)::

    <root>/dev_data/<machine>/train/section_00_source_train_normal_0000_<attr>.wav
    <root>/dev_data/<machine>/test/section_00_target_test_anomaly_0012_<attr>.wav
    <root>/eval_data/<machine>/train/section_03_source_train_normal_0000_<attr>.wav
    <root>/eval_data/<machine>/test/section_03_0000.wav        (anonymised, labels in CSVs)

The attribute string ``<attr>`` is kept verbatim and also split into key/value pairs where it
alternates keys and values (``volt_1.0_wt_100`` -> ``{"volt": "1.0", "wt": "100"}``).

Other public layouts are read too (:data:`LAYOUTS`, detected per machine folder): DCASE 2021
(``source_test/`` and ``target_test/`` folders), DCASE 2020 (``normal_id_00_00000000.wav``; the
machine ID is the section, one domain), MIMII and MIMII DUE (``<machine>/id_00/normal/``,
``abnormal/``, under any SNR-prefixed parent such as ``-6_dB_fan/``), and a plain folder
(``<machine>/normal/``, optional ``<machine>/abnormal/``, unlabelled clips directly in
``<machine>/``). The machine folder is ``<root>/<subset>/<machine>``, else ``<root>/<machine>``,
else ``<root>/<anything>_<machine>/<machine>``. MIMII and plain folders have no train/test
split: :func:`derived_split` makes a deterministic one.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np

from asdkeras.errors import AsdError
from asdkeras.names import DEV_DATA, SUBSETS, ground_truth_csvs

MACHINE_TYPES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")
"""The seven DCASE 2022 Task 2 machine types."""

SPLITS = ("train", "test")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

_LABELLED = re.compile(
    r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attr>.+))?$")
_ANONYMISED = re.compile(r"^section_(?P<section>\d{2})_(?P<index>\d+)$")

_DCASE2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<index>\d+)$")

EXPECTED_PATTERN = ("section_XX_{source|target}_{train|test}_{normal|anomaly}_NNNN_<attributes>.wav, "
                    "section_XX_NNNN.wav or (DCASE 2020) {normal|anomaly}_id_XX_NNNNNNNN.wav")

LAYOUTS = {"dcase2022": "DCASE 2022-2024 (train/, test/, section_XX_... names)",
           "dcase2021": "DCASE 2021 (train/, source_test/, target_test/)",
           "dcase2020": "DCASE 2020 (train/, test/, {normal|anomaly}_id_XX_... names; ID = section, one domain)",
           "mimii": "MIMII / MIMII DUE (id_XX/normal/, id_XX/abnormal/; split derived)",
           "plain": "plain folder (normal/, abnormal/, or unlabelled clips; split derived)"}
"""Layout name -> description, as ``summary`` prints it."""


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
    match = _DCASE2020.match(stem)
    if match:
        return ClipRecord(path=path, machine=machine, split=split, section=f"{int(match['section']):02d}",
                          index=int(match["index"]), domain="source", label=match["label"])
    raise AsdError(f"{path}: file name does not follow the DCASE pattern; expected {EXPECTED_PATTERN}")


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


def _is_audio_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS and not name.startswith(".")


def _audio_names(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if _is_audio_name(n))


def detect_layout(folder: str, strict: bool = True) -> str | None:
    """The layout (a key of :data:`LAYOUTS`) of a machine folder; None or an error when unknown."""
    entries = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    if entries & {"source_test", "target_test"}:
        return "dcase2021"
    if entries & {"train", "test"}:
        names = _audio_names(os.path.join(folder, "train")) + _audio_names(os.path.join(folder, "test"))
        return "dcase2020" if names and _DCASE2020.match(os.path.splitext(names[0])[0]) else "dcase2022"
    if any(re.fullmatch(r"id_\d+", e) and os.path.isdir(os.path.join(folder, e)) for e in entries):
        return "mimii"
    if entries & {"normal", "abnormal"} or _audio_names(folder):
        return "plain"
    if strict:
        raise AsdError(f"{folder}: no known layout (expected train/ and test/, source_test/, id_XX/normal/, normal/ "
                       f"or audio files); see 'python cli.py summary --help'")
    return None


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
    layout = detect_layout(base)
    if layout in ("mimii", "plain"):
        train, test = derived_split(base, machine, layout)
        records = train if split == "train" else test
        if not records and not missing_ok:
            raise AsdError(f"{base}: no {split} clips in this {LAYOUTS[layout]} folder "
                           f"({'add normal clips' if split == 'train' else 'add abnormal/ or unlabelled clips'})")
        return records
    folders = [os.path.join(base, split)]
    if layout == "dcase2021" and split == "test":
        folders = [os.path.join(base, f) for f in ("source_test", "target_test", "test")]
    names = [(folder, n) for folder in folders for n in _audio_names(folder)]
    if not names and missing_ok:
        return []
    if not any(os.path.isdir(f) for f in folders):
        raise AsdError(f"{folders[0]}: no such folder; a DCASE machine folder holds train/ and test/")
    if not names:
        raise AsdError(f"{folders[0]}: holds no audio file (.wav, .flac, .ogg); check the download or the path")
    return sorted((parse_filename(os.path.join(folder, n), machine, split) for folder, n in names),
                  key=lambda r: r.filename)


DERIVED_TEST_SHARE = 0.5
"""At most this share of a section's normals is held out for testing in a derived split."""

DERIVED_SPLIT_RULE = (f"per section, as many normals held out for testing as there are abnormal clips (at most "
                      f"{DERIVED_TEST_SHARE:.0%} of the normals), drawn at random with seed 0 from the sorted names; "
                      f"test = those normals, every abnormal clip and the unlabelled clips")


def derived_split(base: str, machine: str, layout: str, seed: int = 0) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """A deterministic train/test split of a folder that has none (MIMII, plain folders).

    Per section (MIMII's machine ID; "00" for a plain folder), as the MIMII baseline does: as many
    normals are held out for testing as there are abnormal clips, at most
    :data:`DERIVED_TEST_SHARE` of the normals, drawn at random with ``seed`` from the sorted
    names. Test = those normals + every abnormal clip + unlabelled clips. One domain ("source").
    """
    groups = ([(f"{int(d[3:]):02d}", os.path.join(base, d)) for d in sorted(os.listdir(base))
               if re.fullmatch(r"id_\d+", d)] if layout == "mimii" else [("00", base)])
    train, test = [], []
    for section, folder in groups:
        def records(sub: str, label: str | None, split: str) -> list[ClipRecord]:
            where = os.path.join(folder, sub) if sub else folder
            return [ClipRecord(path=os.path.join(where, n), machine=machine, split=split, section=section, index=i,
                               domain="source" if label else None, label=label)
                    for i, n in enumerate(_audio_names(where))]

        normals = records("normal", "normal", "train")
        abnormal = records("abnormal", "anomaly", "test")
        unlabelled = records("", None, "test") if layout == "plain" else []
        held = min(len(abnormal), int(len(normals) * DERIVED_TEST_SHARE))
        chosen = set(np.random.default_rng(seed).choice(len(normals), size=held, replace=False).tolist()) if held else set()
        train += [r for i, r in enumerate(normals) if i not in chosen]
        test += [replace(r, split="test") for i, r in enumerate(normals) if i in chosen] + abnormal + unlabelled
    return train, test


def audio_files(paths: list[str]) -> list[str]:
    """The audio files named, and those found (recursively, sorted) in the folders named."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
                            if _is_audio_name(name))
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
    """Clip counts of one machine type, and the layout its folder follows."""

    machine: str
    sections: tuple
    train_source: int
    train_target: int
    test_normal: int
    test_anomaly: int
    test_unlabelled: int
    layout: str = "dcase2022"


def summarize(root: str, subset: str = DEV_DATA) -> list[MachineSummary]:
    """Counts per machine type of the dataset under ``root`` (a missing train/ or test/ counts 0)."""
    machines = list_machines(root, subset)
    if not machines:
        raise AsdError(f"{os.path.join(root, subset)}: no machine folders; "
                       f"generate data with 'python cli.py synth --out {root}' or point --data at a dataset")
    rows = []
    for machine in machines:
        layout = detect_layout(machine_dir(root, machine, subset), strict=False) or "unknown"
        train, test = (scan_split(root, machine, split, subset, missing_ok=True) for split in SPLITS)
        rows.append(MachineSummary(
            machine, tuple(sections(train + test)),
            len(select(train, domain="source")), len(select(train, domain="target")),
            len(select(test, label="normal")), len(select(test, label="anomaly")), len(select(test, label=None)),
            layout))
    return rows

