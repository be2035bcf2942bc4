"""Spawned worker processes: threads per process, the pool, a fresh process, and mapping over jobs."""

import os

import pytest

from asdkeras.processes import (THREAD_VARIABLES, in_fresh_process, limit_threads, map_in_processes,
                                threads_per_process)


@pytest.mark.parametrize("processes, cores, threads", [(4, 2, 1), (3, 2, 1), (1, 2, 2), (3, 8, 2), (16, 8, 1)])
def test_each_process_computes_on_its_share_of_the_cores(processes, cores, threads):
    assert threads_per_process(processes, cores) == threads


def test_a_childs_threads_are_set_unless_the_user_set_them(monkeypatch):
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    limit_threads(1)
    assert [os.environ[v] for v in THREAD_VARIABLES] == ["1", "1", "3"]


def test_a_fresh_process_runs_the_function_and_returns_its_result():
    assert in_fresh_process(os.getpid) != os.getpid()
    assert in_fresh_process(max, 2, 5) == 5


def _environment_threads(_job) -> str:
    return os.environ.get("TF_NUM_INTRAOP_THREADS", "")


def _square(job: int) -> int:
    if job < 0:
        raise ValueError(f"negative job {job}")
    return job * job


@pytest.mark.parametrize("workers", [1, 2])
def test_every_job_is_mapped_once_in_processes_or_in_this_one(workers):
    assert sorted(map_in_processes(_square, list(range(7)), workers, chunksize=3)) == [j * j for j in range(7)]
    assert list(map_in_processes(_square, [], workers)) == []


def test_pool_children_compute_on_their_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    shares = set(map_in_processes(_environment_threads, [0, 1], workers=2))
    assert shares == {str(threads_per_process(2))}


def test_a_failing_job_raises_its_error_in_the_caller():
    with pytest.raises(ValueError, match="negative job -1"):
        list(map_in_processes(_square, [1, -1, 2], workers=2))
