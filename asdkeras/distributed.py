"""Fitting many machine types and scoring archives on a Ray cluster (``--ray local|ADDRESS``).

A plant has hundreds of machines and archives of millions of clips; both jobs are
embarrassingly parallel. Ray runs them:

* **fit**: one task per machine type and detector kind (:func:`asdkeras.jobs.run_job`), each
  ensemble after its machine's members;
* **score**: batches of files on a pool of actors, each holding one TFLite interpreter.

The results are those of the local path: the same functions write the same files, unreadable
files come back by name and are reported as locally. Workers read the dataset and write the
detectors at the paths given, so on a cluster those paths must be on storage every node mounts
at the same place (NFS, a cluster filesystem). Ray is imported only here, only with ``--ray``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from asdkeras.errors import AsdError, SkippedFiles

SCORE_BATCH = 64
"""Files per scoring task: large enough that a task's overhead (milliseconds) is small beside
its clips (about 10 ms each for the smallest models), small enough to spread a folder over workers."""


def connect(address: str):
    """Start a local Ray instance (``local``) or join a running cluster (``ADDRESS``, e.g. ``10.0.0.5:6379``
    or ``auto``); returns the ``ray`` module."""
    try:
        import ray
    except ImportError:
        raise AsdError("--ray needs Ray: pip install 'ray==2.60.0' (it is in requirements.txt)") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR,
                     runtime_env={"env_vars": _worker_environment()})
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise AsdError(f"--ray {address}: cannot connect ({str(exc).splitlines()[0]}); start the cluster "
                           f"with 'ray start --head' or pass --ray local") from None
    return ray


def _worker_environment() -> dict:
    """Environment the workers need to import this package and find the offline model weights."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    if "KERAS_HOME" in os.environ:
        env["KERAS_HOME"] = os.environ["KERAS_HOME"]
    return env


@dataclass
class Outcome:
    """What a remote job sends back: its result, the files it skipped, its notes, or its one-line error."""

    result: object = None
    skipped: dict | None = None
    error: str | None = None
    notes: list | None = None


class _Notes(logging.Handler):
    """Collects a worker's ``asdkeras`` notes, to be said by the driver as the local path says them."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        log = logging.getLogger("asdkeras")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.handlers = [self]

    def emit(self, record):
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def _say(notes) -> None:
    for message in notes or ():
        logging.getLogger("asdkeras").info(message)


def _in_directory(directory: str) -> None:
    """Work in the driver's directory where this node has it (shared storage), so relative paths hold."""
    if os.path.isdir(directory):
        os.chdir(directory)


def _fit_remote(job, directory: str, strict: bool) -> Outcome:
    from asdkeras.jobs import job_lines, run_job

    _in_directory(directory)
    notes, skipped = _Notes(), SkippedFiles(strict)
    try:
        detector = run_job(job, skipped)
        return Outcome(job_lines(job, detector), skipped.messages, notes=notes.take())
    except AsdError as exc:
        return Outcome(None, skipped.messages, str(exc), notes.take())


def fit_jobs(jobs: list, address: str, on_done=lambda job, lines: None, skipped: SkippedFiles | None = None,
             cpus_per_fit: float = 1.0) -> None:
    """Run fit jobs as Ray tasks, each ensemble once its machine's members are saved.

    Parameters
    ----------
    jobs : list of :class:`asdkeras.jobs.FitJob`
    address : str
        ``local`` or a cluster address (see :func:`connect`).
    on_done : callable
        ``on_done(job, lines)`` with the lines the local path prints, as each job finishes.
    skipped : SkippedFiles, optional
        Receives the unreadable files each job reports; strict (None): the first one is an error.
    cpus_per_fit : float
        CPUs Ray reserves per fit (TensorFlow uses every core it sees; this only spaces the tasks).
    """
    ray = connect(address)
    skipped = SkippedFiles.or_strict(skipped)
    remote = ray.remote(num_cpus=cpus_per_fit, max_retries=0)(_fit_remote)
    pending, waiting = {}, list(jobs)
    done: set[tuple[str, str]] = set()
    while waiting or pending:
        for job in [j for j in waiting if all((j.machine, kind) in done for kind in j.after)]:
            waiting.remove(job)
            pending[remote.remote(job, os.getcwd(), skipped.strict)] = job
        if not pending:
            unfitted = ", ".join(f"{j.machine}/{j.kind}" for j in waiting)
            raise AsdError(f"cannot fit {unfitted}: its members failed (named above)")
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        outcome = ray.get(ready[0])
        _say(outcome.notes)
        for path, message in (outcome.skipped or {}).items():
            skipped.add(path, message)
        if outcome.error:
            for ref in pending:
                ray.cancel(ref)
            raise AsdError(outcome.error)
        done.add((job.machine, job.kind))
        on_done(job, outcome.result)


class _Scorer:
    """A Ray actor holding one TFLite interpreter."""

    def __init__(self, directory: str, tflite_path: str, threads: int | None, kernels: str, long_clips: str):
        from asdkeras.lite import LiteDetector

        _in_directory(directory)
        self.notes = _Notes()
        self.detector = LiteDetector(tflite_path, threads, kernels)
        self.long_clips = long_clips

    def score(self, paths: list[str]):
        from asdkeras.lite import score_paths

        errors, problems = {}, []
        scored = score_paths(self.detector, paths, errors.__setitem__, long_clips=self.long_clips,
                             level_problems=problems)
        return scored, errors, problems, self.notes.take()


def ray_scorer(address: str, workers: int | None = None, batch: int = SCORE_BATCH):
    """A replacement for :func:`asdkeras.lite.score_paths` that scores on Ray actors.

    Parameters
    ----------
    address : str
        ``local`` or a cluster address.
    workers : int, optional
        Actors (one interpreter each); default: the cluster's CPUs.
    batch : int
        Files per task.
    """
    def score(detector, paths: list[str], on_error, progress=lambda iterable, total: iterable,
              long_clips: str = "crop"):
        from ray.util import ActorPool

        from asdkeras.audio import level_notes

        ray = connect(address)
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_Scorer)
        pool = ActorPool([actor.remote(os.getcwd(), detector.path, detector.threads, detector.kernels, long_clips)
                          for _ in range(min(count, max(1, -(-len(paths) // batch))))])
        batches = [paths[i:i + batch] for i in range(0, len(paths), batch)]
        scored, problems = [], []
        for clips, errors, level, notes in progress(pool.map(lambda a, b: a.score.remote(b), batches), len(batches)):
            _say(notes)
            scored += clips
            problems += level
            for path, message in errors.items():
                on_error(path, message)
        _say(level_notes(problems, len(paths)))  # one summary over the run, as the local path says it
        return scored

    return score
