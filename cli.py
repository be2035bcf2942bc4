"""asdkeras command line: anomalous machine-sound detection (DCASE 2022 Task 2).

Thin by design: parse options, call the package, print. Every user-facing error is an
``AsdError`` and is printed as one line (exit status 2).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter (CUDA probing) off the terminal

import click  # noqa: E402

from asdkeras.data.layout import MACHINE_TYPES as MACHINE_CHOICES  # noqa: E402
from asdkeras.errors import AsdError, show_notes  # noqa: E402
from asdkeras.audio import LONG_CLIP_MODES  # noqa: E402
from asdkeras.lite import KERNELS, SCORE_HELP  # noqa: E402
from asdkeras import console, detectors  # noqa: E402
from asdkeras.demo import DemoSettings  # noqa: E402
from asdkeras.kinds import COMBINATIONS, ENSEMBLE, ENSEMBLE_MODES, QUANTISATIONS  # noqa: E402
from asdkeras.names import DATA_DIR, DEV_DATA, SUBSETS, TFLITE_DIR, detector_dir  # noqa: E402


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
@console.user_errors
def synth(out, machines, scale, seed, force, workers):
    """Write the synthetic DCASE-like dataset (16 kHz, 10 s, DCASE 2022 names).

    Example: python cli.py synth --out data/synth --machines fan,valve
    """
    import time

    from asdkeras.data.synth import SCALES, generate

    started = time.perf_counter()
    written = generate(out, console.machine_list(machines), SCALES[scale], seed, force,
                       console.progress("synthesising"), workers)
    click.echo(f"wrote {len(written)} clips under {os.path.join(out, 'dev_data')} in {time.perf_counter() - started:.0f} s")
    console.print_summary(out)


@cli.command()
@console.folder_option("data", "Dataset root holding dev_data/.")
@console.user_errors
def summary(data):
    """Print clip counts per machine type of a DCASE tree.

    Example: python cli.py summary --data data
    """
    console.print_summary(data)


@cli.command()
@click.option("--machine", "machines", required=True, multiple=True, type=click.Choice(MACHINE_CHOICES),
              help="Machine type to fetch (repeatable).")
@click.option("--split", type=click.Choice(["dev", "additional", "eval"]), default="dev", show_default=True,
              help="dev: development set (dev_data/); additional: the evaluation machines' training clips; "
                   "eval: their test clips (both into eval_data/).")
@console.folder_option("data", "Dataset root; archives are kept in <data>/downloads/.")
@click.option("--mirror", help="Base URL serving the same file names instead of Zenodo (an institute's mirror); "
                               "<name>.md5 there is checked when present.")
@click.option("--force", is_flag=True, help="Replace files of the archive that already exist.")
@console.user_errors
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
        bar = tqdm(unit="B", unit_scale=True, desc=machine, leave=False, disable=True if console.run_option("quiet") else None)

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
        console.print_summary(data)


@cli.command()
@click.option("--machine", required=True, help="Machine type: a folder under <data>/dev_data (the seven DCASE 2022 types, "
                                               "or any other such as pump); a comma list; or all (every type there).")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)),
              default=detectors.DEFAULT_KIND, show_default=True,
              help=detectors.describe_kinds() + "; all: every kind, then the ensemble.")
@click.option("--ensemble", "ensemble_mode", type=click.Choice(ENSEMBLE_MODES),
              help="ensemble, all: battery = the member or fusion of all members with the best AUC on the "
                   "pseudo-anomaly battery, among those keeping a steady and a transient view [default]; pick = the "
                   "member with the best battery AUC; fuse = every member's score standardised by its held-out normal "
                   "scores, combined; paper = the report's per-type table.")
@click.option("--combine", type=click.Choice(COMBINATIONS),
              help="ensemble, all: how --ensemble fuse combines the members' standardised scores [mean] "
                   "(battery chooses it).")
@console.configuration_options
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--channel", "channel_text", help="Multichannel recordings (MIMII's 8 microphones): a channel index "
                                               "from 0, or mean to average them [mean]; saved with the detector.")
@console.folder_option("data")
@console.folder_option("models-dir", "Where detectors are saved.")
@console.folder_option("cache-dir", "Feature, image and augmentation cache folder.")
@click.option("--name", help="Save the detector as <models-dir>/<machine>/<NAME> instead of <model>, so a variant "
                                "(--loss mse, another outlier) does not replace the default one; test it with --name too.")
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@click.option("--ray", "ray_address", help=console.RAY_HELP + " One task per machine type and kind, the ensemble after its members.")
@console.user_errors
def fit(machine, model_kind, ensemble_mode, combine, seed, channel_text, data, models_dir, cache_dir, name, strict,
        ray_address, **options):
    """Train detectors for machine types over all their sections and save them.

    Example: python cli.py fit --machine gearbox --model all
    """
    from asdkeras.jobs import job_lines, plan, run_job

    if model_kind not in (ENSEMBLE, "all") and (ensemble_mode or combine):
        raise AsdError(f"--{'ensemble' if ensemble_mode else 'combine'} applies to --model ensemble or all, "
                       f"not --model {model_kind}")
    if model_kind == ENSEMBLE and any(v is not None for v in options.values()):
        flags = {spec.name: spec.flag for spec in detectors.command_options()}
        given = next(k for k, v in options.items() if v is not None)
        raise AsdError(f"--{flags[given]} does not apply to --model ensemble (it is built from the "
                       f"saved detectors); use --model all to refit them")
    console.check_name(name, model_kind)
    options = dict(options, channel=console.channel(channel_text))  # bad values fail before any data is generated
    console.ensure_data(data)
    machines = console.machines(machine, data)
    if name and len(machines) > 1:
        raise AsdError(f"--name applies to one machine type, not --machine {machine}")
    if name:
        options["output_dir"] = os.path.join(models_dir, machines[0], name)
    skipped = console.skipped_files(strict)
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
            detector = run_job(job, skipped, console.progress("ensemble" if job.kind == ENSEMBLE else "preparing"),
                               console.keras_verbosity())
            done(job, job_lines(job, detector))
    console.finish(skipped)


@cli.command()
@click.option("--machine", required=True, help=console.MACHINE_HELP)
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds()), default=detectors.DEFAULT_KIND, show_default=True,
              help="Which saved detector.")
@console.folder_option("data", "Dataset root.")
@click.option("--subset", type=click.Choice(SUBSETS), default=DEV_DATA, show_default=True,
              help="Which part of the DCASE tree to test.")
@console.folder_option("models-dir")
@console.folder_option("result-dir")
@console.folder_option("cache-dir")
@click.option("--ground-truth", "ground_truth_dir", default=None,
              help="Folder of official ground-truth CSVs (ground_truth_<machine>_section_XX_test.csv, and "
                   "ground_truth_domain_... when present) that label anonymised eval_data names.")
@click.option("--long-clips", type=click.Choice(LONG_CLIP_MODES), default="crop", show_default=True,
              help=SCORE_HELP["long_clips"])
@click.option("--name", help="Test the detector saved with 'fit --name NAME' (results are labelled NAME).")
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@console.user_errors
def test(machine, model_kind, data, subset, models_dir, result_dir, cache_dir, ground_truth_dir, long_clips, name, strict):
    """Score the test clips: official DCASE CSVs, and metrics for labelled data.

    Example: python cli.py test --machine gearbox --model ensemble
    """
    from asdkeras.data.layout import labelled_test_records
    from asdkeras.evaluate import evaluate_with_variants

    records = labelled_test_records(data, machine, subset, ground_truth_dir)
    skipped = console.skipped_files(strict)
    console.note_long_clips([r.path for r in records], long_clips)
    evaluations = evaluate_with_variants(detector_dir(models_dir, machine, name or model_kind), machine,
                                         name or model_kind, data, result_dir, cache_dir, subset,
                                         console.progress("features"), records, skipped, long_clips)
    if evaluations[0].ensemble:
        from asdkeras.ensemble_choice import describe_choice
        click.echo(describe_choice(evaluations[0].ensemble))
    for evaluation in evaluations:
        click.echo(evaluation.table())
    click.echo(f"wrote {len({f for e in evaluations for f in e.files})} files under {result_dir}/")
    for note in dict.fromkeys(note for e in evaluations for note in e.notes):
        click.echo(f"note: {note}", err=True)
    incomplete = [r.note for e in evaluations for r in e.results if r.note]
    if strict and incomplete:
        raise AsdError(f"{incomplete[0]}; the CSVs are written, but --strict asks for every official figure")
    console.finish(skipped)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--machine", required=True, help=console.MACHINE_HELP)
@click.option("--section", help="Section (machine or product) the clips belong to [as their DCASE names say, else "
                                 "the detectors' only one].")
@click.option("--domain", type=click.Choice(["target", "source"]),
              help="Condition group the clips join [as their DCASE names say, else target: a new operating condition].")
@click.option("--data", help="Dataset root the detectors were fitted on [the one in their config.json].")
@console.folder_option("models-dir")
@console.folder_option("cache-dir")
@click.option("--strict", is_flag=True, help=SCORE_HELP["strict"])
@console.user_errors
def calibrate(paths, machine, section, domain, data, models_dir, cache_dir, strict):
    """Judge every saved detector of a machine again with normal clips of an operating condition (files or
    folders), its networks kept as trained: the condition is then known from those clips too, without a refit.

    Example: python cli.py calibrate --machine valve --section 00 new-condition-clips/
    """
    from asdkeras.calibration import calibrate as calibrate_detectors

    skipped = console.skipped_files(strict)
    done = calibrate_detectors(machine, list(paths), section, domain, models_dir, data, cache_dir,
                               console.progress("calibrating"), skipped)
    for line in done.lines():
        click.echo(line)
    click.echo(f"note: test results and TFLite files made before hold the old detectors: test again "
               f"('python cli.py test --machine {machine} --model KIND'), then export again "
               f"('python cli.py export-tflite --machine {machine}', whose sidecars take the official scores of "
               f"the results)", err=True)
    console.finish(skipped)


@cli.command("export-tflite")
@click.option("--machine", "machines", multiple=True,
              help="Machine type to export (repeatable) [default: every machine with a saved detector].")
@click.option("--all", "all_machines", is_flag=True, help="Every machine with a saved detector (the default).")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)), default="all", show_default=True,
              help="Which detector kind to export (ensemble: one waveform-in model per variant).")
@click.option("--quant", default=",".join(QUANTISATIONS), show_default=True,
              help="Comma-separated variants: float32, float16, dynamic (int8 weights), int8 (full-integer network).")
@click.option("--int8-io", is_flag=True, help="int8 input and output (scale, zero point in the sidecar) for the int8 feature models.")
@console.folder_option("models-dir")
@click.option("--out", default=TFLITE_DIR, show_default=True, help="Folder for the .tflite files and their .json sidecars.")
@click.option("--data", default=None, help="Dataset root for int8 calibration clips [the one the detector was fitted on].")
@console.folder_option("cache-dir")
@console.folder_option("result-dir", "Where 'test' wrote metrics; the official score found there goes into the sidecars.")
@console.user_errors
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
                                 announce=lambda name: None if console.run_option("quiet") else click.echo(f"exporting {name}", err=True),
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
@click.option("--ray", "ray_address", help=console.RAY_HELP + " Batches of files per worker, one interpreter each.")
@console.user_errors
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
                      say=lambda line: click.echo(line, err=True), progress=console.progress("scoring"), scorer=scorer)
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
    console.finish(run.skipped)


@cli.command()
@click.option("--machine", "machines", multiple=True,
              help="Machine type (repeatable); with several, or --all, one page covers them.")
@click.option("--all", "all_machines", is_flag=True, help="Every machine type with test results, on one page.")
@click.option("--model", "model_kind", type=click.Choice(detectors.detector_kinds() + ("all",)), default="all", show_default=True,
              help="Which detectors to show (those tested).")
@click.option("--out", default="reports", show_default=True, help="Folder for the HTML page and its PNGs.")
@console.folder_option("result-dir", "Where 'test' wrote metrics and scores.")
@console.folder_option("models-dir")
@console.folder_option("data", "Dataset root, to find clips for the spectrograms.")
@console.user_errors
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
@click.option("--machine", required=True, help=console.MACHINE_HELP)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1), help="Maximum epochs per autoencoder.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@console.folder_option("data")
@console.folder_option("models-dir", "Where the sweep's detectors are saved (under <machine>/oe-sweep/).")
@console.folder_option("result-dir", "Where the sweep's table (JSON) and CSVs go.")
@console.folder_option("cache-dir")
@console.user_errors
def oe_sweep(machine, epochs, seed, data, models_dir, result_dir, cache_dir):
    """Clear AE against OE with every other machine type as the outlier (the report's Table 1).

    Example: python cli.py oe-sweep --machine fan --epochs 20
    """
    from asdkeras.sweep import format_sweep_table, run_oe_sweep

    console.ensure_data(data)
    rows = run_oe_sweep(machine, data, models_dir, result_dir, cache_dir, epochs, seed,
                        console.progress("features"), lambda name: click.echo(f"training {name} ...", err=True))
    click.echo(format_sweep_table(machine, rows))


@cli.command()
@console.folder_option("data")
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
@console.folder_option("models-dir", "Where detectors are saved.")
@console.folder_option("result-dir")
@console.folder_option("cache-dir", "Feature, image and augmentation cache (reused on reruns).")
@console.folder_option("tflite-dir", "Where the int8 ensemble models go.")
@console.user_errors
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
    console.ensure_data(data)
    console.print_summary(data)
    settings = DemoSettings(data=data, models_dir=models_dir, result_dir=result_dir, cache_dir=cache_dir,
                            tflite_dir=tflite_dir, **settings)

    def show(outcome):
        click.echo("\n".join(["", *outcome.lines, "", outcome.table, f"({outcome.machine}: {outcome.seconds:.0f} s)"]))

    outcomes = run_demo(console.machine_list(machines), settings, on_table=show)
    click.echo(f"\n== every machine type ({time.perf_counter() - started:.0f} s)")
    for outcome in outcomes:
        click.echo(outcome.table + "\n")
    click.echo(f"detectors under {models_dir}/<machine>/<kind>/, results (DCASE CSVs, metrics JSON) under "
               f"{result_dir}/ (TFLite runs under {os.path.join(result_dir, TFLITE_DIR)}/), int8 ensembles under "
               f"{tflite_dir}/")
    skipped = console.skipped_files(strict=False)
    for outcome in outcomes:
        skipped.messages.update(outcome.skipped)
    console.finish(skipped)


if __name__ == "__main__":
    cli()
