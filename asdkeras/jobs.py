"""Fitting as a list of jobs, one per machine type and detector kind, the ensemble after its members.

``python cli.py fit`` runs the jobs one after another in its own process, or (``--ray``) as Ray
tasks on a cluster (:mod:`asdkeras.distributed`); both run :func:`run_job`, so they write the same
files and say the same lines. No TensorFlow is imported until a job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asdkeras import detectors
from asdkeras.kinds import DEFAULT_ENSEMBLE_MODE, ENSEMBLE
from asdkeras.names import CACHE_DIR, DATA_DIR, MODELS_DIR, detector_dir
from asdkeras.progress import no_progress


@dataclass(frozen=True)
class FitJob:
    """One detector to fit.

    Attributes
    ----------
    machine : str
    kind : str
        A detector kind trained from audio, or ``"ensemble"`` (built from the machine's saved detectors).
    options : dict
        The kind's configuration options (:func:`asdkeras.fit.make_config`); for the ensemble
        ``mode`` and ``combine``.
    seed : int
    data, models_dir, cache_dir : str
        Dataset root, detectors folder and feature cache (shared storage when jobs run on a cluster).
    announce : bool
        Print "== machine: fitting kind" before it (when one command fits several detectors).
    """

    machine: str
    kind: str
    options: dict = field(default_factory=dict)
    seed: int = 0
    data: str = DATA_DIR
    models_dir: str = MODELS_DIR
    cache_dir: str = CACHE_DIR
    announce: bool = False

    @property
    def after(self) -> tuple[str, ...]:
        """The kinds this job needs fitted first (the ensemble: its machine's members)."""
        return detectors.model_kinds() if self.kind == ENSEMBLE else ()


def plan(machines: list[str], model_kind: str, options: dict, ensemble_mode: str | None, combine: str | None,
         seed: int, data: str, models_dir: str, cache_dir: str) -> list[FitJob]:
    """The jobs of ``fit --machine ... --model model_kind`` (``all``: every kind, then the ensemble)."""
    from asdkeras.fit import options_for

    jobs = []
    every = model_kind == "all"
    for machine in machines:
        kinds = detectors.model_kinds() if every else () if model_kind == ENSEMBLE else (model_kind,)
        for kind in kinds:
            jobs.append(FitJob(machine, kind, options_for(kind, options) if every else options, seed, data,
                               models_dir, cache_dir, announce=every or len(machines) > 1))
        if model_kind in (ENSEMBLE, "all"):
            jobs.append(FitJob(machine, ENSEMBLE, {"mode": ensemble_mode or DEFAULT_ENSEMBLE_MODE,
                                                   "combine": combine or "mean"}, seed, data, models_dir, cache_dir,
                               announce=len(machines) > 1))
    return jobs


def run_job(job: FitJob, skipped=None, progress=no_progress, verbose: int = 0):
    """Fit one job's detector and save it; returns the :class:`~asdkeras.detector.Detector`.

    ``skipped`` (a :class:`~asdkeras.errors.SkippedFiles`) records unreadable training files.
    """
    if job.kind == ENSEMBLE:
        from asdkeras.ensemble import fit_ensemble

        return fit_ensemble(job.machine, job.models_dir, job.options["mode"], job.options["combine"], data_dir=job.data,
                            cache_dir=job.cache_dir, progress=progress, skipped=skipped)
    from asdkeras.fit import fit_detector, make_config

    config = make_config(job.kind, machine=job.machine, seed=job.seed, data_dir=job.data, models_dir=job.models_dir,
                         cache_dir=job.cache_dir, **job.options)
    return fit_detector(job.kind, config, progress, verbose, skipped)


def job_folder(job: FitJob) -> str:
    """Where the job's detector is saved."""
    return job.options.get("output_dir") or detector_dir(job.models_dir, job.machine, job.kind)


def job_lines(job: FitJob, detector) -> list[str]:
    """What the command line says when the job is done."""
    if job.kind == ENSEMBLE:
        from asdkeras.ensemble_choice import describe_choice

        return [f"saved ensemble for {job.machine} to {job_folder(job)}", describe_choice(detector.info["ensemble"]),
                f"threshold {detector.threshold:.4g}: {detector.thresholds[detector.threshold_rule]['description']}"]
    from asdkeras.fit import fit_summary

    return fit_summary(detector, job_folder(job))
