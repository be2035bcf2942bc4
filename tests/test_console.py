"""The command line's shared plumbing (asdkeras/console.py): option types, value parsing, one-line errors."""

import click
import pytest
from click.testing import CliRunner

import cli
from asdkeras import console
from asdkeras.detectors.config import Option
from asdkeras.errors import AsdError


def test_a_configuration_option_becomes_the_click_type_its_field_declares():
    assert isinstance(console.click_type(Option("x", choices=("a", "b"))), click.Choice)
    bounded = console.click_type(Option("x", float, minimum=0, maximum=1, open_bounds=True))
    assert bounded.convert("0.5", None, None) == 0.5
    with pytest.raises(click.BadParameter):
        bounded.convert("1", None, None)
    assert console.click_type(Option("x", int, minimum=1)).convert("3", None, None) == 3
    assert console.click_type(Option("x", float)) is float
    assert console.click_type(Option("x", "pair")).convert("0.8,1.2", None, None) == (0.8, 1.2)


def test_option_values_are_parsed_or_named_in_one_line():
    assert console.channel(None) is None and console.channel("mean") is None and console.channel("3") == 3
    with pytest.raises(AsdError, match="--channel left: use a channel index"):
        console.channel("left")
    with pytest.raises(AsdError, match="--name 'ae': use a plain folder name other than ae, mobilenet"):
        console.check_name("ae", "gmm")
    with pytest.raises(AsdError, match="unknown machine type"):
        console.machine_list("fan,drill")


@pytest.mark.parametrize("args, message", [
    (["--channel", "left"], "error: --channel left: use a channel index"),
    (["--stretch-range", "0.9", "--model", "mobilenet"], "'0.9' must be MIN,MAX"),
    (["--model", "ensemble", "--background-noise", "noise"], "error: --background-noise does not apply to --model ensemble"),
])
def test_bad_fit_options_fail_before_any_data_is_generated(tmp_path, args, message):
    result = CliRunner().invoke(cli.cli, ["fit", "--machine", "fan", "--data", str(tmp_path / "data"), *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()
