"""Fetch the official DCASE 2022 Task 2 archives into the layout ``fit`` and ``test`` read.

One archive per machine type and split, from Zenodo (or a mirror serving the same file names):

=========== ================= ================================ ====================
split       Zenodo record     file                             extracted under
=========== ================= ================================ ====================
dev         6355122           ``dev_<machine>.zip``            ``<data>/dev_data/``
additional  6462969           ``eval_data_<machine>_train.zip`` ``<data>/eval_data/``
eval        6586456           ``eval_data_<machine>_test.zip``  ``<data>/eval_data/``
=========== ================= ================================ ====================

A download goes to ``<data>/downloads/<file>.part`` and resumes from there (HTTP Range) when it
was cut; the MD5 that the record publishes (Zenodo's API, or ``<file>.md5`` on a mirror) is
checked before the archive is kept. Extraction is all-or-nothing: members are checked first
(no absolute paths, no ``..``, no links or device files), written into a temporary folder, and
moved into place only when every member is out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from typing import Callable

from asdkeras.errors import AsdError
from asdkeras.names import DEV_DATA, EVAL_DATA

ZENODO = "https://zenodo.org"
LICENCE = ("The DCASE 2022 Task 2 data (MIMII DG and ToyADMOS2) is licensed under Creative Commons "
           "Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0): non-commercial use, with attribution, "
           "derivatives under the same licence.")
CHUNK = 1 << 16
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Split:
    """One downloadable part of the dataset."""

    record: str
    file_pattern: str
    subset: str


SPLITS = {"dev": Split("6355122", "dev_{machine}.zip", DEV_DATA),
          "additional": Split("6462969", "eval_data_{machine}_train.zip", EVAL_DATA),
          "eval": Split("6586456", "eval_data_{machine}_test.zip", EVAL_DATA)}


def archive_url(split: Split, name: str, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{name}" if mirror else f"{ZENODO}/records/{split.record}/files/{name}?download=1"


def published_md5(split: Split, name: str, mirror: str | None) -> str | None:
    """The MD5 the source publishes for ``name``: Zenodo's record API, or ``<name>.md5`` on a mirror; None if none."""
    try:
        if mirror:
            with urllib.request.urlopen(f"{mirror.rstrip('/')}/{name}.md5", timeout=TIMEOUT_SECONDS) as response:
                text = response.read(4096).decode("ascii", "replace").split()
            return text[0].lower() if text else None
        with urllib.request.urlopen(f"{ZENODO}/api/records/{split.record}", timeout=TIMEOUT_SECONDS) as response:
            files = json.load(response).get("files", [])
        checksum = next((f.get("checksum", "") for f in files if f.get("key") == name), "")
        return checksum.split(":", 1)[1].lower() if checksum.startswith("md5:") else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def fetch(url: str, part_path: str, progress: Callable[[int, int | None], None] = lambda done, total: None) -> None:
    """Download ``url`` into ``part_path``, resuming from the bytes already there (HTTP Range).

    A server that ignores the range gets the download restarted from the start. A connection
    lost mid-way raises a one-line :class:`AsdError` and leaves the part file for the next run.
    """
    have = os.path.getsize(part_path) if os.path.isfile(part_path) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file already holds everything
            return
        raise AsdError(f"{url}: HTTP {exc.code} {exc.reason}; check the machine type, the split and --mirror") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AsdError(f"{url}: cannot connect ({reason}); check the network or pass --mirror URL") from None
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (have if resumed else 0) + int(length) if length and length.isdigit() else None
        done = have if resumed else 0
        try:
            with open(part_path, "ab" if resumed else "wb") as handle:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    handle.write(block)
                    done += len(block)
                    progress(done, total)
        except (OSError, urllib.error.URLError) as exc:
            raise AsdError(f"{url}: the connection was lost after {done} bytes ({exc}); run the same command "
                           f"again to resume") from None
    if total is not None and done < total:
        raise AsdError(f"{url}: the connection was lost after {done} of {total} bytes; run the same command again "
                       f"to resume")


def md5_of(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_name(archive: str, name: str) -> None:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise AsdError(f"{archive}: member '{name}' has an absolute path; refused, nothing was extracted")
    if ".." in normalised.split("/"):
        raise AsdError(f"{archive}: member '{name}' would land outside the target folder; refused, nothing was "
                       f"extracted")


def _members(archive: str) -> list[tuple[str, bool]]:
    """``(name, is_dir)`` of every member, each checked; a link, device or unsafe path is refused."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = []
            for info in bundle.infolist():
                _check_name(archive, info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded, a plain file
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise AsdError(f"{archive}: member '{info.filename}' is a link or special file; refused, nothing "
                                   f"was extracted")
                members.append((info.filename, info.is_dir()))
            return members
    try:
        with tarfile.open(archive) as bundle:
            members = []
            for info in bundle.getmembers():
                _check_name(archive, info.name)
                if not (info.isfile() or info.isdir()):
                    raise AsdError(f"{archive}: member '{info.name}' is a link or special file; refused, nothing was "
                                   f"extracted")
                members.append((info.name, info.isdir()))
            return members
    except tarfile.TarError:
        raise AsdError(f"{archive}: not a zip or tar archive (damaged download?); delete it and download again") from None


def extract_safely(archive: str, target: str, force: bool = False) -> list[str]:
    """Extract ``archive`` into ``target`` all-or-nothing; return the top-level folders written.

    Members are checked before anything is written, extracted into a temporary folder beside
    ``target``, and merged into place only when all are out (an existing folder gains the new
    files: the additional and eval archives both fill ``eval_data/<machine>/``). A file that
    already exists is kept unless ``force``.
    """
    members = _members(archive)
    clashes = [name for name, is_dir in members if not is_dir and os.path.exists(os.path.join(target, name))]
    if clashes and not force:
        raise AsdError(f"{os.path.join(target, clashes[0])}: already exists ({len(clashes)} files of the archive do); "
                       f"pass --force to replace them")
    os.makedirs(target, exist_ok=True)
    staging = os.path.join(target, f".extract-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")
        tops = sorted(os.listdir(staging))
        for top in tops:
            _merge(os.path.join(staging, top), os.path.join(target, top))
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise AsdError(f"{archive}: extraction failed ({exc}); delete the archive and download again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [os.path.join(target, t) for t in tops]


def _merge(source: str, destination: str) -> None:
    """Move ``source`` to ``destination``; into an existing folder, entry by entry."""
    if os.path.isdir(source) and os.path.isdir(destination):
        for name in os.listdir(source):
            _merge(os.path.join(source, name), os.path.join(destination, name))
    else:
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.replace(source, destination)


def download(machine: str, split: str, data_dir: str, mirror: str | None = None, force: bool = False,
             say: Callable[[str], None] = print,
             progress: Callable[[int, int | None], None] = lambda done, total: None) -> list[str]:
    """Fetch, check and extract one machine type's archive of ``split``; return the folders written."""
    if split not in SPLITS:
        raise AsdError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    part = SPLITS[split]
    name = part.file_pattern.format(machine=machine)
    downloads = os.path.join(data_dir, "downloads")
    os.makedirs(downloads, exist_ok=True)
    archive = os.path.join(downloads, name)
    if not os.path.isfile(archive):
        url = archive_url(part, name, mirror)
        say(f"downloading {url}")
        fetch(url, archive + ".part", progress)
        expected = published_md5(part, name, mirror)
        if expected:
            actual = md5_of(archive + ".part")
            if actual != expected:
                os.remove(archive + ".part")
                raise AsdError(f"{name}: MD5 {actual} differs from the published {expected}; the download was "
                               f"deleted, run the command again")
            say(f"{name}: MD5 {actual} matches the published checksum")
        else:
            say(f"note: no MD5 published for {name} at the source; not verified")
        os.replace(archive + ".part", archive)
    else:
        say(f"{archive}: already downloaded")
    return extract_safely(archive, os.path.join(data_dir, part.subset), force)
