"""The demo's settings and process plumbing (its end-to-end run is in test_cli_demo.py)."""

import os

import pytest

from asdkeras.demo import THREAD_VARIABLES, DemoSettings, _limit_threads, in_fresh_process, threads_per_process


def test_settings_out_of_range_name_what_was_received():
    with pytest.raises(ValueError, match="Received: .*processes=0"):
        DemoSettings(processes=0)


@pytest.mark.parametrize("processes, cores, threads", [(4, 2, 1), (3, 2, 1), (1, 2, 2), (3, 8, 2), (16, 8, 1)])
def test_each_process_computes_on_its_share_of_the_cores(processes, cores, threads):
    assert threads_per_process(processes, cores) == threads


def test_a_childs_threads_are_set_unless_the_user_set_them(monkeypatch):
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    _limit_threads(1)
    assert [os.environ[v] for v in THREAD_VARIABLES] == ["1", "1", "3"]


def test_a_fresh_process_runs_the_function_and_returns_its_result():
    assert in_fresh_process(os.getpid) != os.getpid()
    assert in_fresh_process(max, 2, 5) == 5
