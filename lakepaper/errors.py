"""The errors lakepaper raises, in one place.

Every error names the file or parameter at fault and says what is wrong, so a
papermill run that stops shows the reader what to fix, not a traceback deep in
numpy.
"""

from __future__ import annotations


class LakepaperError(Exception):
    """Base class of every error lakepaper raises on purpose."""


class ParameterError(LakepaperError, ValueError):
    """A parameter (papermill, profile or function argument) is unknown or has a bad value."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"parameter {name!r}: {problem}")


class InputError(LakepaperError, ValueError):
    """An input file is missing, unreadable or not what the stage expects."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
