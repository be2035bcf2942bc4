"""asdkeras command line: anomalous machine-sound detection (DCASE 2022 Task 2).

Thin by design: parse options, call the package, print. Every user-facing error is an
``AsdError`` and is printed as one line (exit status 2).
"""

from __future__ import annotations

import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter (CUDA probing) off the terminal

import click  # noqa: E402

from asdkeras.data.layout import MACHINE_TYPES as MACHINE_CHOICES  # noqa: E402
from asdkeras.errors import INTERRUPTED, AsdError, os_error_message, show_notes  # noqa: E402
from asdkeras.audio import LONG_CLIP_MODES  # noqa: E402
from asdkeras.lite import KERNELS, SCORE_HELP  # noqa: E402
from asdkeras import detectors  # noqa: E402
from asdkeras.demo import DemoSettings  # noqa: E402
from asdkeras.kinds import COMBINATIONS, ENSEMBLE, ENSEMBLE_MODES, QUANTISATIONS  # noqa: E402
from asdkeras.names import (CACHE_DIR, DATA_DIR, DEV_DATA, MODELS_DIR, RESULT_DIR, SUBSETS, TFLITE_DIR,  # noqa: E402
                            detector_dir)


def _run_option(name: str) -> bool:
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
            if _run_option("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # disk full, permissions, a folder vanishing: say which file, not a traceback
            if _run_option("debug"):
                raise
            click.echo(f"error: {os_error_message(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            sys.exit(130)
    return wrapper


def _progress(description: str):
    """A progress bar over clips on a terminal; none with --quiet."""
    from tqdm import tqdm

    quiet = _run_option("quiet")
    return lambda iterable, total=None: tqdm(iterable, desc=description, total=total, unit="clip",
                                             leave=False, disable=True if quiet else None, dynamic_ncols=True)


def _print_summary(root: str) -> None:
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


def _machine_list(value: str | None) -> list[str]:
    if not value:
        return list(MACHINE_CHOICES)
    machines = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in machines if m not in MACHINE_CHOICES]
    if unknown:
        raise AsdError(f"unknown machine type(s) {', '.join(unknown)}; use any of {', '.join(MACHINE_CHOICES)}")
    return machines


@click.group()
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines (results and errors still print).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error instead of its one line.")
@click.pass_context
def cli(context, quiet, debug):
    """Anomalous machine-sound detection: autoencoder and MobileNetV2 with outlier exposure, pooled-GMM, ensemble,
    TFLite export.

    \b
    Examples:
      python cli.py demo                                  # the whole system on synthetic data
      python cli.py fit --machine gearbox --model all     # every detector and the ensemble
      python cli.py --quiet test --machine gearbox --model ensemble
    """
    context.obj = {"quiet": quiet, "debug": debug}
    show_notes()


@cli.command()
@click.option("--out", default=DATA_DIR, show_default=True, help="Dataset root to write (gets dev_data/<machine>/).")
@click.option("--machines", default=None, help="Comma-separated machine types [default: all seven].")
@click.option("--scale", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: a few hundred clips per machine; full: the DCASE 2022 counts.")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives the same files.")
@click.option("--force", is_flag=True, help="Replace machine folders that already hold files.")
@click.option("--workers", default=None, type=click.IntRange(1), help="Processes rendering audio [default: CPU count].")
@user_errors
def synth(out, machines, scale, seed, force, workers):
    """Write the synthetic DCASE-like dataset (16 kHz, 10 s, DCASE 2022 names).

    Example: python cli.py synth --out data/synth --machines fan,valve
    """
    import time

    from asdkeras.data.synth import SCALES, generate

    started = time.perf_counter()
    written = generate(out, _machine_list(machines), SCALES[scale], seed, force,
                       _progress("synthesising"), workers)
    click.echo(f"wrote {len(written)} clips under {os.path.join(out, 'dev_data')} in {time.perf_counter() - started:.0f} s")
    _print_summary(out)


@cli.command()
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root holding dev_data/.")
@user_errors
def summary(data):
    """Print clip counts per machine type of a DCASE tree.

    Example: python cli.py summary --data data
    """
    _print_summary(data)


@cli.command()
@click.option("--machine", "machines", required=True, multiple=True, type=click.Choice(MACHINE_CHOICES),
              help="Machine type to fetch (repeatable).")
@click.option("--split", type=click.Choice(["dev", "additional", "eval"]), default="dev", show_default=True,
              help="dev: development set (dev_data/); additional: the evaluation machines' training clips; "
                   "eval: their test clips (both into eval_data/).")
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root; archives are kept in <data>/downloads/.")
@click.option("--mirror", help="Base URL serving the same file names instead of Zenodo (an institute's mirror); "
                               "<name>.md5 there is checked when present.")
@click.option("--force", is_flag=True, help="Replace files of the archive that already exist.")
@user_errors
def download(machines, split, data, mirror, force):
    """Fetch the official DCASE 2022 Task 2 archives from Zenodo and extract them where fit and test read.

    A cut download resumes when the command is run again; the published MD5 is checked; archive
    members with absolute or '..' paths, links or device files are refused and nothing is extracted.

    Example: python cli.py download --machine fan --split dev --data data
    """
    from tqdm import tqdm

    from asdkeras.data.download import LICENCE, download as fetch_archive

    click.echo(LICENCE)
    for machine in machines:
        bar = tqdm(unit="B", unit_scale=True, desc=machine, leave=False, disable=True if _run_option("quiet") else None)

        def progress(done, total, bar=bar):
            bar.total = total
            bar.update(done - bar.n)

        try:
            folders = fetch_archive(machine, split, data, mirror, force, say=lambda m: click.echo(m, err=True),
                                    progress=progress)
        finally:
            bar.close()
        click.echo(f"{machine}: extracted into {', '.join(folders)}")
    if split == "dev":
        _print_summary(data)


def _keras_verbosity() -> int:
    """Keras progress bar on a terminal, one line per epoch otherwise (logs, CI), nothing with --quiet."""
    return 0 if _run_option("quiet") else 1 if sys.stdout.isatty() else 2


def _ensure_data(data: str) -> None:
    """Generate the synthetic default dataset under ``data`` when it holds no dev_data yet."""
    from asdkeras.data.layout import list_machines
    from asdkeras.data.synth import SCALES, generate

    if list_machines(data):
        return
    click.echo(f"no dataset under {data}/dev_data: generating the synthetic default there (scale small)")
    generate(data, MACHINE_CHOICES, SCALES["small"], progress=_progress("synthesising"))


def _pair(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise AsdError(f"'{text}' must be MIN,MAX, e.g. 0.9,1.1") from None
    return low, high


def _kind_help(option: str, text: str, none: str | None = None) -> str:
    """``"<kinds>: <text> [<default>]."`` with the kinds that take ``option`` and their defaults read
    from their configurations, so a default is written in one place. ``none``: how to say a None default."""
    defaults = detectors.defaults_of(option)
    shown = {kind: none if value is None else ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
             for kind, value in defaults.items()}
    default = (next(iter(shown.values())) if len(set(shown.values())) == 1
               else "; ".join(f"{kind} {value}" for kind, value in shown.items()))
    return f"{', '.join(defaults)}: {text} [{default}]."


@cli.command()
@click.option("--machine", required=True, help="Machine type: a folder under <data>/dev_data (the seven DCASE 2022 types, "
                                               "or any other such as pump); a comma list; or all (every type there).")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)), default="ae", show_default=True,
              help="ae: dense autoencoder on log-mel vectors; mobilenet: MobileNetV2 on spectrogram images; "
                   "gmm: time-pooled log-mel levels with a Gaussian mixture; ensemble: built from the machine's "
                   "saved detectors; all: every kind, then the ensemble.")
@click.option("--ensemble", "ensemble_mode", type=click.Choice(ENSEMBLE_MODES),
              help="ensemble, all: battery = the member or fusion of all members with the best AUC on the "
                   "pseudo-anomaly battery, among those keeping a steady and a transient view [default]; pick = the "
                   "member with the best battery AUC; fuse = every member's score standardised by its held-out normal "
                   "scores, combined; paper = the report's per-type table.")
@click.option("--combine", type=click.Choice(COMBINATIONS),
              help="ensemble, all: how --ensemble fuse combines the members' standardised scores [mean] "
                   "(battery chooses it).")
@click.option("--outlier", help=_kind_help("outlier", "outlier machine type for outlier exposure: a type, auto (the report's pairing) or none"))
@click.option("--epochs", type=click.IntRange(1), help=_kind_help("epochs", "maximum epochs (mobilenet: of the head alone)"))
@click.option("--patience", type=click.IntRange(1), help=_kind_help("patience", "epochs without validation improvement before stopping"))
@click.option("--batch-size", type=click.IntRange(1), help=_kind_help("batch_size", "batch size (ae: vectors, mobilenet: images)"))
@click.option("--learning-rate", type=float, help=_kind_help("learning_rate", "Adam learning rate"))
@click.option("--outlier-clips", type=click.IntRange(1), help=_kind_help("outlier_clips", "outlier clips", none="as many as the machine's"))
@click.option("--threshold-quantile", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help=_kind_help("threshold_quantile", "share of new normal clips kept as normal by the threshold (0.9: ~10 % false alarms)"))
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--loss", type=click.Choice(["mse", "oe", "oe-hinge"]),
              help=_kind_help("loss", "mse = clear AE on normals; oe = the report's |y - e(x)|; oe-hinge = max(0, m - e(x)) "
                                      "on outliers"))
@click.option("--margin", type=float, help=_kind_help("margin", "hinge margin m for --loss oe-hinge"))
@click.option("--error-pooling", type=click.Choice(["mean", "mean+peak"]),
              help=_kind_help("error_pooling", "how a clip's vector errors become its score: mean (the baseline's "
                                               "clip mean, blind to short events) or mean+peak (beside it the peak, "
                                               "each judged per condition, fused by their maximum)"))
@click.option("--target-clips", type=click.IntRange(1), help=_kind_help("target_clips", "cap on the machine's training clips"))
@click.option("--pooling-decay", help=_kind_help("pooling_decay", "battery (a steady view, the band mean, and a transient "
                                                 "view, max-like, fused at score level, the max-like pooling chosen by the "
                                                 "pseudo-anomaly battery); a GWRP decay r in [0, 1] (1 = mean, 0 = max); "
                                                 "fuse (mean and r = 0.5 side by side in one vector); or paper (TWFR-GMM's "
                                                 "per-type value)"))
@click.option("--components", type=click.IntRange(1), help=_kind_help("components", "mixture components per section", none="2; with --pooling-decay paper: per type"))
@click.option("--covariance-reg", type=click.FloatRange(0, min_open=True), help=_kind_help("covariance_reg", "covariance regularisation in standardised units"))
@click.option("--weights", help=_kind_help("weights", "initial weights: imagenet, none, or a no-top .h5 path", none="none"))
@click.option("--width", type=float, help=_kind_help("width", "width multiplier alpha (0.35 is the smallest with ImageNet weights)"))
@click.option("--image-size", type=click.IntRange(32), help=_kind_help("image_size", "image side in pixels"))
@click.option("--train-clips", type=click.IntRange(1), help=_kind_help("train_clips", "random training clips of the machine"))
@click.option("--augmented-clips", type=click.IntRange(0), help=_kind_help("augmented_clips", "augmented copies", none="twice --train-clips"))
@click.option("--fine-tune-epochs", type=click.IntRange(0), help=_kind_help("fine_tune_epochs", "epochs with the top blocks unfrozen"))
@click.option("--fine-tune-blocks", type=click.IntRange(0, 16), help=_kind_help("fine_tune_blocks", "top blocks to unfreeze"))
@click.option("--int8-epochs", type=click.IntRange(0), help=_kind_help("int8_epochs", "quantisation-aware fine-tuning epochs of the int8 twin "
                                                                          "that the integer TFLite variants come from; 0: no twin"))
@click.option("--threshold-rule", type=click.Choice(["quantile", "eq2"]),
              help=_kind_help("threshold_rule", "the normal quantile in the clip's operating condition or the report's Eq. 2 (both are saved)"))
@click.option("--threshold-alpha", type=float, help=_kind_help("threshold_alpha", "the report's alpha in Eq. 2"))
@click.option("--pitch-semitones", type=float, help=_kind_help("pitch_semitones", "PitchShift range +- semitones"))
@click.option("--stretch-range", help=_kind_help("stretch_range", "TimeStretch rate range MIN,MAX"))
@click.option("--background-noise", "background_noise_dir", help="mobilenet: folder of noise files for AddBackgroundNoise (off by default).")
@click.option("--channel", "channel_text", help="Multichannel recordings (MIMII's 8 microphones): a channel index "
                                               "from 0, or mean to average them [mean]; saved with the detector.")
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root; the synthetic default is generated there when missing.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where detectors are saved.")
@click.option("--cache-dir", default=CACHE_DIR, show_default=True, help="Feature, image and augmentation cache folder.")
@click.option("--name", help="Save the detector as <models-dir>/<machine>/<NAME> instead of <model>, so a variant "
                                "(--loss mse, another outlier) does not replace the default one; test it with --name too.")
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@click.option("--ray", "ray_address", help=RAY_HELP + " One task per machine type and kind, the ensemble after its members.")
@user_errors
def fit(machine, model_kind, ensemble_mode, combine, seed, channel_text, data, models_dir, cache_dir, name, strict,
        stretch_range, ray_address, **options):
    """Train detectors for machine types over all their sections and save them.

    Example: python cli.py fit --machine gearbox --model all
    """
    from asdkeras.jobs import job_lines, plan, run_job

    if model_kind not in (ENSEMBLE, "all") and (ensemble_mode or combine):
        raise AsdError(f"--{'ensemble' if ensemble_mode else 'combine'} applies to --model ensemble or all, "
                       f"not --model {model_kind}")
    if model_kind == ENSEMBLE and any(v is not None for v in options.values()):
        name = next(k for k, v in options.items() if v is not None)
        raise AsdError(f"--{name.replace('_', '-')} does not apply to --model ensemble (it is built from the "
                       f"saved detectors); use --model all to refit them")
    _ensure_data(data)
    machines = _machines(machine, data)
    if name and len(machines) > 1:
        raise AsdError(f"--name applies to one machine type, not --machine {machine}")
    _check_name(name, model_kind)
    options = dict(options, stretch_range=_pair(stretch_range), channel=_channel(channel_text))
    if name:
        options["output_dir"] = os.path.join(models_dir, machines[0], name)
    skipped = _skipped_files(strict)
    jobs = plan(machines, model_kind, options, ensemble_mode, combine, seed, data, models_dir, cache_dir)

    def done(job, lines):
        for line in lines:
            click.echo(line)

    if ray_address:
        from asdkeras.distributed import fit_jobs

        click.echo(f"fitting {len(jobs)} detector(s) on Ray ({ray_address})", err=True)
        fit_jobs(jobs, ray_address, lambda job, lines: (click.echo(f"== {job.machine}: {job.kind}", err=True),
                                                        done(job, lines)), skipped)
    else:
        for job in jobs:
            if job.announce:
                click.echo(f"== {job.machine}: fitting {job.kind}", err=True)
            detector = run_job(job, skipped, _progress("ensemble" if job.kind == ENSEMBLE else "preparing"),
                               _keras_verbosity())
            done(job, job_lines(job, detector))
    _finish(skipped)


def _machines(text: str, data: str) -> list[str]:
    """``--machine``: one type, a comma list, or ``all`` (every type under the dataset root)."""
    if text != "all":
        return [m.strip() for m in text.split(",") if m.strip()] or [text]
    from asdkeras.data.layout import list_machines

    machines = list_machines(data)
    if not machines:
        raise AsdError(f"--machine all: no machine type under {data}/dev_data")
    return machines


def _note_long_clips(paths: list[str], mode: str, clip_samples: int | None = None, sample_rate: int | None = None) -> None:
    """Say how clips longer than the model's length are scored."""
    from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, long_clips_note

    note = long_clips_note(paths, mode, clip_samples or CLIP_SAMPLES, sample_rate or SAMPLE_RATE)
    if note:
        click.echo(f"note: {note}", err=True)


def _channel(text: str | None) -> int | None:
    """``--channel N|mean`` -> the channel index, or None to average."""
    if text is None or text == "mean":
        return None
    if not text.isdigit():
        raise AsdError(f"--channel {text}: use a channel index (0, 1, ...) or mean")
    return int(text)


def _check_name(name: str | None, model_kind: str) -> None:
    """A variant's folder name: one plain folder name, and not another kind's folder."""
    if name is None:
        return
    if model_kind in (ENSEMBLE, "all"):
        raise AsdError(f"--name applies to one detector, not --model {model_kind}")
    kinds = detectors.detector_kinds()
    if not name or os.sep in name or name.startswith(".") or (name in kinds and name != model_kind):
        raise AsdError(f"--name {name!r}: use a plain folder name other than {', '.join(kinds)}")


def _skipped_files(strict: bool):
    """The run's record of unreadable files, each printed by name as it is found."""
    from asdkeras.errors import SkippedFiles

    return SkippedFiles(strict, report=lambda message: click.echo(f"error: {message}", err=True))


def _finish(skipped) -> None:
    """Exit 1 after the run when any file was skipped, with the count."""
    if len(skipped):
        click.echo(f"note: {skipped.summary()}", err=True)
        sys.exit(1)


@cli.command()
@click.option("--machine", required=True, help="Machine type: a folder under <data>/dev_data (the seven DCASE 2022 types, or any other such as pump).")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds()), default="ae", show_default=True, help="Which saved detector.")
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root.")
@click.option("--subset", type=click.Choice(SUBSETS), default=DEV_DATA, show_default=True,
              help="Which part of the DCASE tree to test.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where the detectors are saved.")
@click.option("--result-dir", default=RESULT_DIR, show_default=True, help="Where CSVs and metrics JSON go.")
@click.option("--cache-dir", default=CACHE_DIR, show_default=True, help="Feature cache folder.")
@click.option("--ground-truth", "ground_truth_dir", default=None,
              help="Folder of official ground-truth CSVs (ground_truth_<machine>_section_XX_test.csv, and "
                   "ground_truth_domain_... when present) that label anonymised eval_data names.")
@click.option("--long-clips", type=click.Choice(LONG_CLIP_MODES), default="crop", show_default=True,
              help=SCORE_HELP["long_clips"])
@click.option("--name", help="Test the detector saved with 'fit --name NAME' (results are labelled NAME).")
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@user_errors
def test(machine, model_kind, data, subset, models_dir, result_dir, cache_dir, ground_truth_dir, long_clips, name, strict):
    """Score the test clips: official DCASE CSVs, and metrics for labelled data.

    Example: python cli.py test --machine gearbox --model ensemble
    """
    from asdkeras.data.layout import labelled_test_records
    from asdkeras.evaluate import evaluate_with_variants

    records = labelled_test_records(data, machine, subset, ground_truth_dir)
    skipped = _skipped_files(strict)
    _note_long_clips([r.path for r in records], long_clips)
    evaluations = evaluate_with_variants(detector_dir(models_dir, machine, name or model_kind), machine,
                                         name or model_kind, data, result_dir, cache_dir, subset,
                                         _progress("features"), records, skipped, long_clips)
    if evaluations[0].ensemble:
        from asdkeras.ensemble import describe_choice
        click.echo(describe_choice(evaluations[0].ensemble))
    for evaluation in evaluations:
        click.echo(evaluation.table())
    click.echo(f"wrote {len({f for e in evaluations for f in e.files})} files under {result_dir}/")
    for note in dict.fromkeys(note for e in evaluations for note in e.notes):
        click.echo(f"note: {note}", err=True)
    incomplete = [r.note for e in evaluations for r in e.results if r.note]
    if strict and incomplete:
        raise AsdError(f"{incomplete[0]}; the CSVs are written, but --strict asks for every official figure")
    _finish(skipped)


@cli.command("export-tflite")
@click.option("--machine", "machines", multiple=True,
              help="Machine type to export (repeatable) [default: every machine with a saved detector].")
@click.option("--all", "all_machines", is_flag=True, help="Every machine with a saved detector (the default).")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)), default="all", show_default=True,
              help="Which detector kind to export (ensemble: one waveform-in model per variant).")
@click.option("--quant", default=",".join(QUANTISATIONS), show_default=True,
              help="Comma-separated variants: float32, float16, dynamic (int8 weights), int8 (full-integer network).")
@click.option("--int8-io", is_flag=True, help="int8 input and output (scale, zero point in the sidecar) for the int8 feature models.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where the detectors are saved.")
@click.option("--out", default=TFLITE_DIR, show_default=True, help="Folder for the .tflite files and their .json sidecars.")
@click.option("--data", default=None, help="Dataset root for int8 calibration clips [the one the detector was fitted on].")
@click.option("--cache-dir", default=CACHE_DIR, show_default=True, help="Feature cache folder.")
@click.option("--result-dir", default=RESULT_DIR, show_default=True,
              help="Where 'test' wrote metrics; the official score found there goes into the sidecars.")
@user_errors
def export_tflite(machines, all_machines, model_kind, quant, int8_io, models_dir, out, data, cache_dir, result_dir):
    """Export saved detectors to TFLite: feature-in and waveform-in models, every variant, with sidecars.

    Example: python cli.py export-tflite --machine gearbox --model ae --quant float32,int8
    """
    from asdkeras.export import export_folder, official_score_of, saved_detectors, variant_scores_of

    quantisations = [q.strip() for q in quant.split(",") if q.strip()]
    unknown = [q for q in quantisations if q not in QUANTISATIONS]
    if unknown or not quantisations:
        raise AsdError(f"--quant {quant}: use any of {', '.join(QUANTISATIONS)}, comma-separated")
    kinds = detectors.detector_kinds() if model_kind == "all" else (model_kind,)
    count = 0
    for folder in saved_detectors(models_dir, None if all_machines else machines, kinds):
        kind, machine = os.path.basename(folder), os.path.basename(os.path.dirname(folder))
        _, files = export_folder(folder, out, quantisations, cache_dir, data, int8_io,
                                 official_score_of(result_dir, kind, machine),
                                 announce=lambda name: None if _run_option("quiet") else click.echo(f"exporting {name}", err=True),
                                 variant_scores=variant_scores_of(result_dir, kind, machine))
        for exported in files:
            click.echo(f"{exported.path} ({os.path.getsize(exported.path) / 1024:.0f} kB) + {os.path.basename(exported.sidecar)}")
        count += len(files)
    click.echo(f"wrote {count} TFLite models with sidecars under {out}/")


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--tflite", "tflite_path", required=True, help=SCORE_HELP["tflite"])
@click.option("--csv", "csv_path", help=SCORE_HELP["csv"])
@click.option("--threads", type=click.IntRange(1), help=SCORE_HELP["threads"])
@click.option("--result-dir", help="Also write the official DCASE CSVs (and metrics for labelled names) of DCASE-named clips here.")
@click.option("--long-clips", type=click.Choice(LONG_CLIP_MODES), default="crop", show_default=True,
              help=SCORE_HELP["long_clips"])
@click.option("--kernels", type=click.Choice(KERNELS), default="sidecar", show_default=True, help=SCORE_HELP["kernels"])
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@click.option("--ray", "ray_address", help=RAY_HELP + " Batches of files per worker, one interpreter each.")
@user_errors
def score(paths, tflite_path, csv_path, threads, result_dir, long_clips, kernels, strict, ray_address):
    """Score audio files or folders with a TFLite model alone (no Keras): score and decision per clip.

    The same run as the edge runtime's 'python -m asdkeras.edge' (no TensorFlow needed there).
    Example: python cli.py score data/dev_data/fan/test --tflite tflite/fan_ae_int8_waveform.tflite --csv fan.csv
    """
    from asdkeras.lite import run_scoring, write_scored_csv

    scorer = None
    if ray_address:
        from asdkeras.distributed import ray_scorer

        scorer = ray_scorer(ray_address)
    run = run_scoring(list(paths), tflite_path, threads, long_clips, strict, kernels,
                      say=lambda line: click.echo(line, err=True), progress=_progress("scoring"), scorer=scorer)
    for line in run.lines():
        click.echo(line)
    if csv_path:
        write_scored_csv(csv_path, run.scored)
    if result_dir:
        from asdkeras.evaluate import evaluate_scored

        evaluation = evaluate_scored(run.detector.sidecar, run.scored, [p for p in run.files if p in run.skipped],
                                     result_dir)
        click.echo(evaluation.table())
        for note in evaluation.notes:
            click.echo(f"note: {note}", err=True)
    click.echo(run.summary(), err=True)
    _finish(run.skipped)


@cli.command()
@click.option("--machine", "machines", multiple=True,
              help="Machine type (repeatable); with several, or --all, one page covers them.")
@click.option("--all", "all_machines", is_flag=True, help="Every machine type with test results, on one page.")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)), default="all", show_default=True,
              help="Which detectors to show (those tested).")
@click.option("--out", default="reports", show_default=True, help="Folder for the HTML page and its PNGs.")
@click.option("--result-dir", default=RESULT_DIR, show_default=True, help="Where 'test' wrote metrics and scores.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where the detectors are saved.")
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root, to find clips for the spectrograms.")
@user_errors
def report(machines, all_machines, model_kind, out, result_dir, models_dir, data):
    """One self-contained HTML page: tables, ROC curves, score histograms, spectrograms, training curves.

    Reads what 'test' and 'fit' saved; no TensorFlow. Example: python cli.py report --machine gearbox
    """
    from asdkeras.report import tested_machines, write_report

    if all_machines or not machines:
        machines = tested_machines(result_dir)
    kinds = detectors.detector_kinds() if model_kind == "all" else (model_kind,)
    path = write_report(list(machines), kinds, result_dir, models_dir, out, data)
    click.echo(f"wrote {path} (and its PNGs under {out}/)")


@cli.command("oe-sweep")
@click.option("--machine", required=True, help="Machine type: a folder under <data>/dev_data (the seven DCASE 2022 types, or any other such as pump).")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1), help="Maximum epochs per autoencoder.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root; the synthetic default is generated there when missing.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where the sweep's detectors are saved (under <machine>/oe-sweep/).")
@click.option("--result-dir", default=RESULT_DIR, show_default=True, help="Where the sweep's table (JSON) and CSVs go.")
@click.option("--cache-dir", default=CACHE_DIR, show_default=True, help="Feature cache folder.")
@user_errors
def oe_sweep(machine, epochs, seed, data, models_dir, result_dir, cache_dir):
    """Clear AE against OE with every other machine type as the outlier (the report's Table 1).

    Example: python cli.py oe-sweep --machine fan --epochs 20
    """
    from asdkeras.sweep import format_sweep_table, run_oe_sweep

    _ensure_data(data)
    rows = run_oe_sweep(machine, data, models_dir, result_dir, cache_dir, epochs, seed,
                        _progress("features"), lambda name: click.echo(f"training {name} ...", err=True))
    click.echo(format_sweep_table(machine, rows))


@cli.command()
@click.option("--data", default=DATA_DIR, show_default=True, help="Dataset root; the synthetic default is generated there when missing.")
@click.option("--machines", default=None, help="Comma-separated machine types [default: all seven].")
@click.option("--epochs", default=DemoSettings.epochs, show_default=True, type=click.IntRange(1), help="Autoencoder maximum epochs.")
@click.option("--width", default=DemoSettings.width, show_default=True, type=float,
              help="MobileNetV2 width multiplier (0.35 and 1.0 have ImageNet weights).")
@click.option("--image-size", default=DemoSettings.image_size, show_default=True, type=click.IntRange(32),
              help="MobileNetV2 spectrogram image side in pixels.")
@click.option("--mobilenet-epochs", default=DemoSettings.mobilenet_epochs, show_default=True, type=click.IntRange(1),
              help="MobileNetV2 epochs of each phase (head, then fine-tuning).")
@click.option("--mobilenet-batch-size", default=DemoSettings.mobilenet_batch_size, show_default=True,
              type=click.IntRange(1), help="MobileNetV2 images per batch (memory grows with it).")
@click.option("--augmented-clips", default=DemoSettings.augmented_clips, show_default=True, type=click.IntRange(0),
              help="MobileNetV2's augmented (PitchShift, TimeStretch) training clips.")
@click.option("--int8-epochs", default=DemoSettings.int8_epochs, show_default=True, type=click.IntRange(1),
              help="Quantisation-aware epochs of MobileNetV2's int8 twin.")
@click.option("--processes", default=DemoSettings.processes, show_default=True, type=click.IntRange(1),
              help="Machine types run at the same time, each in its own process.")
@click.option("--models-dir", default=MODELS_DIR, show_default=True, help="Where detectors are saved.")
@click.option("--result-dir", default=RESULT_DIR, show_default=True, help="Where CSVs and metrics JSON go.")
@click.option("--cache-dir", default=CACHE_DIR, show_default=True, help="Feature, image and augmentation cache (reused on reruns).")
@click.option("--tflite-dir", default=TFLITE_DIR, show_default=True, help="Where the int8 ensemble models go.")
@user_errors
def demo(data, machines, models_dir, result_dir, cache_dir, tflite_dir, **settings):
    """The whole system on the embedded synthetic data, every machine type.

    Generates the data if missing; per machine type (each in its own process) fits the autoencoder,
    MobileNetV2 and the pooled GMM, builds the ensemble, tests all four, exports the ensemble as an
    int8 waveform-in TFLite model and scores the test clips with that file alone; then prints one
    table per machine type. Reruns reuse the feature caches.

    Example: python cli.py demo --machines gearbox,valve
    """
    import time

    from asdkeras.demo import run_demo

    started = time.perf_counter()
    _ensure_data(data)
    _print_summary(data)
    settings = DemoSettings(data=data, models_dir=models_dir, result_dir=result_dir, cache_dir=cache_dir,
                            tflite_dir=tflite_dir, **settings)

    def show(outcome):
        click.echo("\n".join(["", *outcome.lines, "", outcome.table, f"({outcome.machine}: {outcome.seconds:.0f} s)"]))

    outcomes = run_demo(_machine_list(machines), settings, on_table=show)
    click.echo(f"\n== every machine type ({time.perf_counter() - started:.0f} s)")
    for outcome in outcomes:
        click.echo(outcome.table + "\n")
    click.echo(f"detectors under {models_dir}/<machine>/<kind>/, results (DCASE CSVs, metrics JSON) under "
               f"{result_dir}/ (TFLite runs under {os.path.join(result_dir, TFLITE_DIR)}/), int8 ensembles under "
               f"{tflite_dir}/")
    skipped = _skipped_files(strict=False)
    for outcome in outcomes:
        skipped.messages.update(outcome.skipped)
    _finish(skipped)


if __name__ == "__main__":
    cli()
