"""Dataset layouts: one class per public folder layout, behind one interface.

A layout says whether a machine folder follows it (:meth:`Layout.matches`), lists the clips of a
split with what their names say (:meth:`Layout.scan`), and whether its train/test split is the
folder's own or derived here (:attr:`Layout.derives_split`, :meth:`DerivedSplitLayout.split`).
Detection tries the registered layouts in order (:func:`detect_layout`); a new layout is one
module with one class and a :func:`register` call below, with no branches elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from asdkeras.data.records import ClipRecord, audio_names, parse_filename
from asdkeras.errors import AsdError


class Layout:
    """A folder layout of one machine type's clips.

    Attributes
    ----------
    name : str
        Short name, as ``summary`` prints it.
    description : str
        One line: what the folders look like.
    derives_split : bool
        Whether the folder has no train/test split of its own, so one is derived (and saved with
        the detector, ``split.json``, so that ``test`` can check it).
    """

    name = ""
    description = ""
    derives_split = False

    def matches(self, folder: str, entries: set[str]) -> bool:
        """Whether the machine folder ``folder`` (holding ``entries``) follows this layout."""
        raise NotImplementedError

    def split_folders(self, base: str, split: str) -> list[str]:
        """The folders that hold a split's clips."""
        return [os.path.join(base, split)]

    def scan(self, base: str, machine: str, split: str, missing_ok: bool = False) -> list[ClipRecord]:
        """All clips of one split, sorted by file name, their names parsed.

        Raises
        ------
        AsdError
            No folder or no clip (unless ``missing_ok``), or a name that does not parse.
        """
        folders = self.split_folders(base, split)
        names = [(folder, n) for folder in folders for n in audio_names(folder)]
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


class DerivedSplitLayout(Layout):
    """A layout without a train/test split: ``normal/`` and ``abnormal/`` clips per section.

    Per section, as the MIMII baseline does: as many normals are held out for testing as there
    are abnormal clips, at most :data:`DERIVED_TEST_SHARE` of the normals, drawn at random with
    ``seed`` from the sorted names. Test = those normals + every abnormal clip + unlabelled
    clips. One domain ("source").
    """

    derives_split = True
    keeps_unlabelled = False
    """Whether audio files directly in a section's folder are test clips without a label."""

    def sections(self, base: str) -> list[tuple[str, str]]:
        """``(section, folder)`` pairs of the machine folder."""
        raise NotImplementedError

    def split(self, base: str, machine: str, seed: int = 0) -> tuple[list[ClipRecord], list[ClipRecord]]:
        """The deterministic ``(train, test)`` records of the folder."""
        train, test = [], []
        for section, folder in self.sections(base):
            def records(sub: str, label: str | None, split: str) -> list[ClipRecord]:
                where = os.path.join(folder, sub) if sub else folder
                return [ClipRecord(path=os.path.join(where, n), machine=machine, split=split, section=section,
                                   index=i, domain="source" if label else None, label=label)
                        for i, n in enumerate(audio_names(where))]

            normals = records("normal", "normal", "train")
            abnormal = records("abnormal", "anomaly", "test")
            unlabelled = records("", None, "test") if self.keeps_unlabelled else []
            held = min(len(abnormal), int(len(normals) * DERIVED_TEST_SHARE))
            chosen = (set(np.random.default_rng(seed).choice(len(normals), size=held, replace=False).tolist())
                      if held else set())
            train += [r for i, r in enumerate(normals) if i not in chosen]
            test += [replace(r, split="test") for i, r in enumerate(normals) if i in chosen] + abnormal + unlabelled
        return train, test

    def scan(self, base: str, machine: str, split: str, missing_ok: bool = False) -> list[ClipRecord]:
        train, test = self.split(base, machine)
        records = train if split == "train" else test
        if not records and not missing_ok:
            raise AsdError(f"{base}: no {split} clips in this {self.description} folder "
                           f"({'add normal clips' if split == 'train' else 'add abnormal/ or unlabelled clips'})")
        return records


_LAYOUTS: dict[str, Layout] = {}


def register(layout: Layout) -> Layout:
    """Add a layout; detection tries layouts in the order they were registered."""
    if not layout.name or layout.name in _LAYOUTS:
        raise ValueError(f"a layout needs a new name. Received: name={layout.name!r}")
    _LAYOUTS[layout.name] = layout
    return layout


def unregister(name: str) -> None:
    """Remove a registered layout (tests)."""
    _LAYOUTS.pop(name, None)


def layouts() -> dict[str, Layout]:
    """Name -> layout, in detection order."""
    return dict(_LAYOUTS)


def detect_layout(folder: str, strict: bool = True) -> Layout | None:
    """The layout of a machine folder; None (``strict=False``) or a one-line error when none matches."""
    entries = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    for layout in _LAYOUTS.values():
        if layout.matches(folder, entries):
            return layout
    if strict:
        raise AsdError(f"{folder}: no known layout (expected train/ and test/, source_test/, id_XX/normal/, normal/ "
                       f"or audio files); see 'python cli.py summary --help'")
    return None


from asdkeras.data.layouts import dcase2021, dcase2020, dcase2022, mimii, plain  # noqa: E402

for _module in (dcase2021, dcase2020, dcase2022, mimii, plain):  # most specific first
    register(_module.LAYOUT)
