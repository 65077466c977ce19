"""User-facing errors: the CLI prints their message as one line, without a traceback."""


class FlexBenchError(Exception):
    """An error caused by input, configuration or missing data, with a message saying what to do."""
