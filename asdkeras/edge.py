"""Scoring on an edge device: a TFLite model and its sidecar, with numpy, soundfile and LiteRT only.

An inspection app's gateway or a Raspberry Pi class box runs the exported waveform-in models with
the standalone LiteRT runtime (``ai-edge-litert``), not with TensorFlow::

    python -m asdkeras.edge PATH... --tflite MODEL.tflite [--csv OUT.csv] [--threads N]
                            [--long-clips crop|max|mean] [--kernels sidecar|builtin|xnnpack] [--strict]

It is ``python cli.py score`` without ``--result-dir``: both call :func:`asdkeras.lite.run_scoring`,
so the conversions (rate, channels, length), the long-clip handling, the printed lines, the CSV,
the decisions, the one-line errors, the skipped files and the exit status (0 done, 1 some file
skipped, 2 an error, 130 interrupted) are the same. Feature-in models need TensorFlow's front-end
and are refused in one line. A device needs :data:`DEVICE_FILES` and the model with its sidecar.
"""

from __future__ import annotations

import argparse
import sys

from asdkeras.audio import LONG_CLIP_MODES
from asdkeras.errors import INTERRUPTED, AsdError, os_error_message, show_notes
from asdkeras.lite import KERNELS, SCORE_HELP, run_scoring, write_scored_csv

DEVICE_FILES = ("asdkeras/__init__.py", "asdkeras/edge.py", "asdkeras/lite.py", "asdkeras/audio.py",
                "asdkeras/resample.py", "asdkeras/errors.py", "asdkeras/names.py", "asdkeras/atomic.py",
                "asdkeras/data/__init__.py", "asdkeras/data/records.py", "requirements-edge.txt")
"""Everything of this repository the edge command runs from (a test runs it from a copy of these alone)."""


def parser() -> argparse.ArgumentParser:
    """The command line, option for option that of ``python cli.py score``."""
    parse = argparse.ArgumentParser(prog="python -m asdkeras.edge", description=(
        "Score audio files or folders with a waveform-in TFLite model and its sidecar, in the LiteRT "
        "runtime (no TensorFlow): score and decision per clip."))
    parse.add_argument("paths", nargs="+", metavar="PATH", help="Audio files, or folders searched recursively.")
    parse.add_argument("--tflite", required=True, metavar="MODEL", help=SCORE_HELP["tflite"])
    parse.add_argument("--csv", metavar="OUT", help=SCORE_HELP["csv"])
    parse.add_argument("--threads", type=_positive, metavar="N", help=SCORE_HELP["threads"])
    parse.add_argument("--long-clips", choices=LONG_CLIP_MODES, default="crop",
                       help=SCORE_HELP["long_clips"] + " [default: crop]")
    parse.add_argument("--kernels", choices=KERNELS, default="sidecar", help=SCORE_HELP["kernels"] + " [default: sidecar]")
    parse.add_argument("--strict", action="store_true", help=SCORE_HELP["strict"])
    return parse


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    show_notes()
    try:
        run = run_scoring(args.paths, args.tflite, args.threads, args.long_clips, args.strict, args.kernels, say=say)
        for line in run.lines():
            print(line)
        if args.csv:
            write_scored_csv(args.csv, run.scored)
        say(run.summary())
        if len(run.skipped):
            say(f"note: {run.skipped.summary()}")
            return 1
        return 0
    except AsdError as exc:
        say(f"error: {exc}")
        return 2
    except OSError as exc:
        say(f"error: {os_error_message(exc)}")
        return 2
    except KeyboardInterrupt:
        say(INTERRUPTED)
        return 130


if __name__ == "__main__":
    sys.exit(main())
