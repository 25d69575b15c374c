"""The error every loader raises for bad input: one message naming the file, the line
and what was expected. The CLI prints it without a traceback."""


class DataError(ValueError):
    pass


def where(path, line: int | None = None) -> str:
    """'path:line' (or just 'path') for the start of an error message."""
    return f"{path}:{line}" if line is not None else str(path)
