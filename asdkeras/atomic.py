"""The one atomic file writer: results, sidecars, caches and audio are written whole or not at all.

A file is written under a temporary name beside its final path (same folder, so the final
``os.replace`` is an atomic rename on POSIX) and renamed only once complete; an error or an
interrupt leaves the previous file, if any, untouched and removes the partial one.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    The temporary name keeps the final extension (``name.<pid>.part.wav``), since some writers
    (soundfile, ``np.save``) choose the format by it.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.part{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` atomically (``newline=""``: CSV rows keep their own line ends)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        handle.write(text)
    return path


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return path


def write_json(path: str, document) -> str:
    """Write a JSON document (indented, numpy scalars as floats) to ``path`` atomically."""
    return write_text(path, json.dumps(document, indent=2, default=float) + "\n")
