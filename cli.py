"""asdkeras command line: anomalous machine-sound detection (DCASE 2022 Task 2).

Thin by design: parse options, call the package, print. Every user-facing error is an
``AsdError`` and is printed as one line (exit status 2).
"""

from __future__ import annotations

import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the terminal

import click  # noqa: E402

from asdkeras.errors import AsdError  # noqa: E402

MACHINE_CHOICES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")


def user_errors(command):
    """Print an AsdError as one line on stderr and exit 2, instead of a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AsdError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; files already written are complete, partial ones were not kept", err=True)
            sys.exit(130)
    return wrapper


def _progress(description: str):
    from tqdm import tqdm
    return lambda iterable, total=None: tqdm(iterable, desc=description, total=total, unit="clip",
                                             leave=False, disable=None, dynamic_ncols=True)


def _print_summary(root: str) -> None:
    from asdkeras.data.layout import summarize
    rows = summarize(root)
    click.echo(f"{'machine':10s} {'sections':10s} {'train src':>9s} {'train tgt':>9s} {'test norm':>9s} {'test anom':>9s}")
    for row in rows:
        click.echo(f"{row.machine:10s} {','.join(row.sections):10s} {row.train_source:9d} {row.train_target:9d} "
                   f"{row.test_normal:9d} {row.test_anomaly:9d}")


def _machine_list(value: str | None) -> list[str]:
    if not value:
        return list(MACHINE_CHOICES)
    machines = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in machines if m not in MACHINE_CHOICES]
    if unknown:
        raise AsdError(f"unknown machine type(s) {', '.join(unknown)}; use any of {', '.join(MACHINE_CHOICES)}")
    return machines


@click.group()
def cli():
    """Anomalous machine-sound detection: autoencoder and MobileNetV2 with outlier exposure."""


@cli.command()
@click.option("--out", default="data", show_default=True, help="Dataset root to write (gets dev_data/<machine>/).")
@click.option("--machines", default=None, help="Comma-separated machine types [default: all seven].")
@click.option("--scale", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: a few hundred clips per machine; full: the DCASE 2022 counts.")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives the same files.")
@click.option("--force", is_flag=True, help="Replace machine folders that already hold files.")
@click.option("--workers", default=None, type=click.IntRange(1), help="Processes rendering audio [default: CPU count].")
@user_errors
def synth(out, machines, scale, seed, force, workers):
    """Write the synthetic DCASE-like dataset (16 kHz, 10 s, DCASE 2022 names)."""
    import time

    from asdkeras.data.synth import SCALES, generate

    started = time.perf_counter()
    written = generate(out, _machine_list(machines), SCALES[scale], seed, force,
                       _progress("synthesising"), workers)
    click.echo(f"wrote {len(written)} clips under {os.path.join(out, 'dev_data')} in {time.perf_counter() - started:.0f} s")
    _print_summary(out)


@cli.command()
@click.option("--data", default="data", show_default=True, help="Dataset root holding dev_data/.")
@user_errors
def summary(data):
    """Print clip counts per machine type of a DCASE tree."""
    _print_summary(data)


def _ensure_data(data: str) -> None:
    """Generate the synthetic default dataset under ``data`` when it holds no dev_data yet."""
    from asdkeras.data.layout import list_machines
    from asdkeras.data.synth import SCALES, generate

    if list_machines(data):
        return
    click.echo(f"no dataset under {data}/dev_data: generating the synthetic default there (scale small)")
    generate(data, MACHINE_CHOICES, SCALES["small"], progress=_progress("synthesising"))


@cli.command()
@click.option("--data", default="data", show_default=True, help="Dataset root; the synthetic default is generated there when missing.")
@user_errors
def demo(data):
    """The main job on the embedded default data: generate it if needed and summarise it."""
    _ensure_data(data)
    _print_summary(data)


if __name__ == "__main__":
    cli()
