"""The one exception type that the command line turns into a one-line message."""


class AsdError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The message names the file or option at fault and says what to do. ``cli.py`` prints it
    as ``error: <message>`` and exits with status 2, without a traceback.
    """
