"""How the command line talks to its user: one-line errors, progress, the dataset summary, notes
on long clips and skipped files, and the option values and options that several commands share.

``cli.py`` declares the commands and calls the package; this module holds what they have in
common, so that the commands stay thin. It imports no TensorFlow.
"""

from __future__ import annotations

import functools
import os
import sys

import click

from asdkeras import detectors
from asdkeras.data.layout import MACHINE_TYPES as MACHINE_CHOICES
from asdkeras.errors import INTERRUPTED, AsdError, os_error_message
from asdkeras.kinds import ENSEMBLE
from asdkeras.names import CACHE_DIR, DATA_DIR, MODELS_DIR, RESULT_DIR, TFLITE_DIR

MACHINE_HELP = "Machine type: a folder under <data>/dev_data (the seven DCASE 2022 types, or any other such as pump)."

FOLDERS = {"data": (DATA_DIR, "Dataset root; the synthetic default is generated there when missing."),
           "models-dir": (MODELS_DIR, "Where the detectors are saved."),
           "result-dir": (RESULT_DIR, "Where CSVs and metrics JSON go."),
           "cache-dir": (CACHE_DIR, "Feature cache folder."),
           "tflite-dir": (TFLITE_DIR, "Where the TFLite models go.")}
"""Folder options -> their default (:mod:`asdkeras.names`) and usual help."""


def folder_option(flag: str, help: str | None = None):
    """``--<flag>`` naming a folder, with its default from :data:`FOLDERS` (``help``: when it says more)."""
    default, usual = FOLDERS[flag]
    return click.option(f"--{flag}", default=default, show_default=True, help=help or usual)


def run_option(name: str) -> bool:
    """A global option of this run (``--quiet``, ``--debug``), given before the command."""
    context = click.get_current_context(silent=True)
    return bool(context and (context.find_root().obj or {}).get(name))


RAY_HELP = ("Run on Ray: local (a Ray instance on this machine) or a running cluster's ADDRESS (host:port, or auto); "
            "the data and output paths must be on storage every node mounts at the same place.")


def user_errors(command):
    """Print an AsdError as one line on stderr and exit 2, instead of a traceback (kept with --debug)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AsdError as exc:
            if run_option("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # disk full, permissions, a folder vanishing: say which file, not a traceback
            if run_option("debug"):
                raise
            click.echo(f"error: {os_error_message(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            sys.exit(130)
    return wrapper


def progress(description: str):
    """A progress bar over clips on a terminal; none with --quiet."""
    from tqdm import tqdm

    quiet = run_option("quiet")
    return lambda iterable, total=None: tqdm(iterable, desc=description, total=total, unit="clip",
                                             leave=False, disable=True if quiet else None, dynamic_ncols=True)


def keras_verbosity() -> int:
    """Keras progress bar on a terminal, one line per epoch otherwise (logs, CI), nothing with --quiet."""
    return 0 if run_option("quiet") else 1 if sys.stdout.isatty() else 2


def print_summary(root: str) -> None:
    from asdkeras.data.layout import summarize
    from asdkeras.data.layouts import layouts
    rows = summarize(root)
    unlabelled = any(row.test_unlabelled for row in rows)
    click.echo(f"{'machine':10s} {'sections':10s} {'train src':>9s} {'train tgt':>9s} {'test norm':>9s} {'test anom':>9s}"
               + (f" {'unlabelled':>10s}" if unlabelled else "") + "  layout")
    for row in rows:
        click.echo(f"{row.machine:10s} {','.join(row.sections):10s} {row.train_source:9d} {row.train_target:9d} "
                   f"{row.test_normal:9d} {row.test_anomaly:9d}" + (f" {row.test_unlabelled:10d}" if unlabelled else "")
                   + f"  {row.layout}")
    known = layouts()
    click.echo("layouts: " + "; ".join(f"{name} = {known[name].description if name in known else name}"
                                       for name in sorted({row.layout for row in rows})))


def machine_list(value: str | None) -> list[str]:
    if not value:
        return list(MACHINE_CHOICES)
    machines = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in machines if m not in MACHINE_CHOICES]
    if unknown:
        raise AsdError(f"unknown machine type(s) {', '.join(unknown)}; use any of {', '.join(MACHINE_CHOICES)}")
    return machines


def ensure_data(data: str) -> None:
    """Generate the synthetic default dataset under ``data`` when it holds no dev_data yet."""
    from asdkeras.data.layout import list_machines
    from asdkeras.data.synth import SCALES, generate

    if list_machines(data):
        return
    click.echo(f"no dataset under {data}/dev_data: generating the synthetic default there (scale small)")
    generate(data, MACHINE_CHOICES, SCALES["small"], progress=progress("synthesising"))


def machines(text: str, data: str) -> list[str]:
    """``--machine``: one type, a comma list, or ``all`` (every type under the dataset root)."""
    if text != "all":
        return [m.strip() for m in text.split(",") if m.strip()] or [text]
    from asdkeras.data.layout import list_machines

    found = list_machines(data)
    if not found:
        raise AsdError(f"--machine all: no machine type under {data}/dev_data")
    return found


def note_long_clips(paths: list[str], mode: str, clip_samples: int | None = None, sample_rate: int | None = None) -> None:
    """Say how clips longer than the model's length are scored."""
    from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, long_clips_note

    note = long_clips_note(paths, mode, clip_samples or CLIP_SAMPLES, sample_rate or SAMPLE_RATE)
    if note:
        click.echo(f"note: {note}", err=True)


def channel(text: str | None) -> int | None:
    """``--channel N|mean`` -> the channel index, or None to average."""
    if text is None or text == "mean":
        return None
    if not text.isdigit():
        raise AsdError(f"--channel {text}: use a channel index (0, 1, ...) or mean")
    return int(text)


def check_name(name: str | None, model_kind: str) -> None:
    """A variant's folder name: one plain folder name, and not another kind's folder."""
    if name is None:
        return
    if model_kind in (ENSEMBLE, "all"):
        raise AsdError(f"--name applies to one detector, not --model {model_kind}")
    kinds = detectors.detector_kinds()
    if not name or os.sep in name or name.startswith(".") or (name in kinds and name != model_kind):
        raise AsdError(f"--name {name!r}: use a plain folder name other than {', '.join(kinds)}")


def skipped_files(strict: bool):
    """The run's record of unreadable files, each printed by name as it is found."""
    from asdkeras.errors import SkippedFiles

    return SkippedFiles(strict, report=lambda message: click.echo(f"error: {message}", err=True))


def finish(skipped) -> None:
    """Exit 1 after the run when any file was skipped, with the count."""
    if len(skipped):
        click.echo(f"note: {skipped.summary()}", err=True)
        sys.exit(1)


class Pair(click.ParamType):
    """Two numbers written ``MIN,MAX``."""

    name = "MIN,MAX"

    def convert(self, value, param, context):
        if isinstance(value, tuple):
            return value
        try:
            low, high = (float(v) for v in value.split(","))
        except ValueError:
            self.fail(f"'{value}' must be MIN,MAX, e.g. 0.9,1.1", param, context)
        return low, high


def click_type(option) -> click.ParamType | type:
    """The click type of a configuration field's :class:`asdkeras.detectors.config.Option`."""
    if option.choices:
        return click.Choice(option.choices)
    if option.type == "pair":
        return Pair()
    if option.minimum is None and option.maximum is None:
        return option.type
    limits = dict(min_open=option.open_bounds, max_open=option.open_bounds) if option.open_bounds else {}
    ranged = click.IntRange if option.type is int else click.FloatRange
    return ranged(option.minimum, option.maximum, **limits)


def configuration_options(command):
    """``fit``'s options that set the kinds' configuration fields, from their modules
    (:func:`asdkeras.detectors.command_options`): help, type and default stay with the field."""
    for spec in reversed(detectors.command_options()):
        command = click.option(f"--{spec.flag}", spec.name, type=click_type(spec.option), help=spec.help)(command)
    return command


