"""The one exception type that the command line turns into a one-line message."""

import re


class AsdError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The message names the file or option at fault and says what to do. ``cli.py`` prints it
    as ``error: <message>`` and exits with status 2, without a traceback.
    """


def tensorflow_reason(message: str) -> str:
    """TensorFlow's own words of an error, without its ``{{function_node ...}}`` and ``[Op:...]`` wrapping."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", message).strip()
    first = text.splitlines()[0] if text else "unknown TensorFlow error"
    return re.sub(r"\s*\[Op:.*$", "", first)
