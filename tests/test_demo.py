"""The demo's settings (its process plumbing: test_processes.py; its end-to-end run: test_cli_demo.py)."""

import pytest

from asdkeras.demo import DemoSettings


def test_settings_out_of_range_name_what_was_received():
    with pytest.raises(ValueError, match="Received: .*processes=0"):
        DemoSettings(processes=0)
