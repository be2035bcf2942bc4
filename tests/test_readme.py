"""Every ``python cli.py ...`` line the README shows, and every example in the commands' help, names a
command and options that exist, with values the options accept.

The lines are parsed as the command line would parse them, not run: a renamed option or command,
or a choice that is no longer offered, fails here instead of on a reader's machine.
"""

import os
import re
import shlex

import click
import pytest

import cli
from conftest import REPO

CLI_CALL = re.compile(r"(?:^|\s)\S*python3?\s+(?:\S*/)?cli\.py(?:\s|$)")


def _readme_lines() -> list[str]:
    """The ``cli.py`` lines of the README's code blocks, continuation lines joined."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if CLI_CALL.search(line):
                lines.append(line)
    return lines


def _help_examples() -> list[str]:
    """The example lines of the group's and every command's help."""
    helps = [cli.cli.help] + [command.help for command in cli.cli.commands.values()]
    return [line for text in helps for line in text.splitlines() if CLI_CALL.search(line)]


def _arguments(line: str) -> list[str]:
    """The words after ``cli.py``, up to a shell comment."""
    return shlex.split(line[CLI_CALL.search(line).end():], comments=True)


def _check(arguments: list[str]) -> str:
    """Parse ``arguments`` as ``cli.py`` would (the group's options, a command, its options and their
    values: choices, ranges, paths); returns the command's name."""
    group = cli.cli.make_context("cli.py", list(arguments))
    name, command, rest = cli.cli.resolve_command(group, group.protected_args + group.args)
    command.make_context(name, rest, parent=group)
    return name


README_LINES = _readme_lines()


def test_the_readme_shows_every_command():
    assert len(README_LINES) >= 30  # the walk-through, the method's sections, Ray and download
    shown = {_check(_arguments(line)) for line in README_LINES}
    assert set(cli.cli.commands) - shown <= {"demo"}  # the README runs the demo as `make demo`


@pytest.mark.parametrize("line", README_LINES + _help_examples())
def test_a_documented_command_line_parses(line):
    try:
        _check(_arguments(line))
    except click.UsageError as error:
        pytest.fail(f"{line.strip()}\n  -> {error.format_message()}")


@pytest.mark.parametrize("arguments, message", [
    (["fit", "--machine", "fan", "--no-such-option", "1"], "No such option"),
    (["fitt", "--machine", "fan"], "No such command"),
    (["synth", "--scale", "huge"], "is not one of"),
])
def test_a_wrong_line_is_caught(arguments, message):
    with pytest.raises(click.UsageError, match=message):
        _check(arguments)
