"""What a clip's file name says: the record of one audio file, and the parsers of the names.

Layouts (:mod:`asdkeras.data.layouts`) find the files; the names are parsed here. The DCASE
2022-2024 names (``section_00_source_train_normal_0000_<attr>.wav``), their anonymised form
(``section_03_0000.wav``) and DCASE 2020's (``normal_id_00_00000000.wav``; the machine ID is the
section, one domain) are all recognised, whatever folder they are in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from asdkeras.errors import AsdError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

_LABELLED = re.compile(
    r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attr>.+))?$")
_ANONYMISED = re.compile(r"^section_(?P<section>\d{2})_(?P<index>\d+)$")
DCASE2020_NAME = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<index>\d+)$")

EXPECTED_PATTERN = ("section_XX_{source|target}_{train|test}_{normal|anomaly}_NNNN_<attributes>.wav, "
                    "section_XX_NNNN.wav or (DCASE 2020) {normal|anomaly}_id_XX_NNNNNNNN.wav")


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
    """Parse a DCASE file name into a :class:`ClipRecord`.

    Raises
    ------
    AsdError
        The name matches neither the labelled, the anonymised nor the DCASE 2020 pattern.
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
    match = DCASE2020_NAME.match(stem)
    if match:
        return ClipRecord(path=path, machine=machine, split=split, section=f"{int(match['section']):02d}",
                          index=int(match["index"]), domain="source", label=match["label"])
    raise AsdError(f"{path}: file name does not follow the DCASE pattern; expected {EXPECTED_PATTERN}")


def is_audio_name(name: str) -> bool:
    """Whether a file name is an audio file this package reads (hidden files are not)."""
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS and not name.startswith(".")


def audio_names(folder: str) -> list[str]:
    """The audio file names directly in ``folder``, sorted; [] when it does not exist."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if is_audio_name(n))


def audio_files(paths: list[str]) -> list[str]:
    """The audio files named, and those found (recursively, sorted) in the folders named."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
                            if is_audio_name(name))
        elif os.path.exists(path):
            found.append(path)
        else:
            raise AsdError(f"{path}: no such file or folder")
    if not found:
        raise AsdError(f"no audio file (.wav, .flac, .ogg) in {', '.join(paths)}")
    return found
