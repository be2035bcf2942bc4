"""Spawned worker processes: the project's one way to run work in other processes on this machine.

Every pool is spawned, not forked: a forked child of a process that has loaded TensorFlow
inherits its thread pools' locks in whatever state they were and can hang. Each child computes
on its share of the cores (:func:`threads_per_process`), set before it imports TensorFlow:
TensorFlow sizes its pools to every core in every process, and three demo processes on 2 cores
with such pools made 17 million involuntary context switches in one demo (0.8 million with four
processes of one thread each; BENCHMARKS.md, "The demo"). A Ray cluster is another matter:
:mod:`asdkeras.distributed`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, Sequence

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
"""What sets the number of threads TensorFlow (and OpenMP) computes with in a process."""


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """Compute threads for each of ``processes`` processes sharing ``cores`` (the machine's by default), at least 1."""
    return max(1, (cores or os.cpu_count() or 1) // processes)


def limit_threads(threads: int) -> None:
    """Pool initializer: the child's threads, set before it imports TensorFlow (its children inherit
    them). A variable the user has set is kept."""
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, str(threads))


def process_pool(processes: int, tasks_per_child: int | None = None) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``processes`` spawned processes, each computing on its share of the cores.

    ``tasks_per_child``: tasks a process runs before it is replaced by a fresh one (1: each task's
    memory is returned to the system when it ends); None keeps the processes for the pool's life.
    """
    return concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                  max_tasks_per_child=tasks_per_child, initializer=limit_threads,
                                                  initargs=(threads_per_process(processes),))


def in_fresh_process(function: Callable, *args):
    """``function(*args)`` in a new spawned process, whose memory is returned to the system when it ends."""
    with process_pool(1) as pool:
        return pool.submit(function, *args).result()


def map_in_processes(function: Callable, jobs: Sequence, workers: int | None = None,
                     chunksize: int = 1) -> Iterator:
    """``function`` over ``jobs``, results in the order they finish: in ``workers`` spawned
    processes (default: one per core, at most one per job), or in this process for one worker.

    ``function`` must be importable by name (a module-level function) and each job picklable.
    """
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    if workers == 1:
        yield from map(function, jobs)
        return
    with process_pool(workers) as pool:
        yield from _unordered(pool, function, jobs, chunksize)


def _unordered(pool: concurrent.futures.ProcessPoolExecutor, function: Callable, jobs: Sequence,
               chunksize: int) -> Iterable:
    chunks = [jobs[i:i + chunksize] for i in range(0, len(jobs), chunksize)]
    futures = [pool.submit(_run_chunk, function, chunk) for chunk in chunks]
    try:
        for future in concurrent.futures.as_completed(futures):
            yield from future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _run_chunk(function: Callable, chunk: Sequence) -> list:
    return [function(job) for job in chunk]
