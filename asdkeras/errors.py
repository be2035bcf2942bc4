"""The one exception type that the command line turns into a one-line message, and the run's notes."""

import logging
import re
import sys


class AsdError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The message names the file or option at fault and says what to do. ``cli.py`` prints it
    as ``error: <message>`` and exits with status 2, without a traceback.
    """


def tensorflow_reason(message: str) -> str:
    """TensorFlow's own words of an error, without its ``{{function_node ...}}`` and ``[Op:...]`` wrapping."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", message).strip()
    first = text.splitlines()[0] if text else "unknown TensorFlow error"
    return re.sub(r"\s*\[Op:.*$", "", first)


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error (disk full, permissions, a folder vanishing): which file, what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; check the path, free space and permissions"


INTERRUPTED = "interrupted; files already written are complete, partial ones were not kept"
"""What a run stopped with Ctrl-C says (before exit status 130)."""


class NoteHandler(logging.Handler):
    """The package's informational messages (file conversions...) as ``note: ...`` lines on stderr."""

    def emit(self, record):
        print(f"note: {record.getMessage()}", file=sys.stderr, flush=True)


def show_notes() -> None:
    """Print the package's notes on stderr from now on (one handler however often called);
    TensorFlow's retracing advice, meant for its developers, stays quiet.

    Notes do not propagate to the root logger: writing a SavedModel logs through absl, which calls
    ``logging.basicConfig()`` and so gave the root a stream handler that printed each note a
    second time as ``INFO:asdkeras:...`` (the demo's export process did).
    """
    log = logging.getLogger("asdkeras")
    if not any(isinstance(h, NoteHandler) for h in log.handlers):
        log.addHandler(NoteHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


class SkippedFiles:
    """The files a run could not read: each reported once by name, the run goes on without them.

    Parameters
    ----------
    strict : bool
        Stop at the first unreadable file instead (``--strict``): :meth:`add` raises it.
    report : callable, optional
        Called with each one-line message as it happens (the command line prints it).
    """

    def __init__(self, strict: bool = False, report=None):
        self.strict = strict
        self.report = report or (lambda message: None)
        self.messages: dict[str, str] = {}

    @classmethod
    def or_strict(cls, skipped: "SkippedFiles | None") -> "SkippedFiles":
        """``skipped`` itself, or (None) a strict record: the first unreadable file raises."""
        return skipped if skipped is not None else cls(strict=True)

    def add(self, path: str, message: str) -> None:
        """Record an unreadable file (``message`` names it and says what to do); raise when strict."""
        if self.strict:
            raise AsdError(message)
        if path not in self.messages:
            self.messages[path] = message
            self.report(message)

    def __contains__(self, path: str) -> bool:
        return path in self.messages

    def __len__(self) -> int:
        return len(self.messages)

    def summary(self) -> str:
        """One line for the end of a run."""
        return (f"{len(self)} file(s) could not be read and were skipped (named above); "
                f"fix or remove them, or pass --strict to stop at the first one")
