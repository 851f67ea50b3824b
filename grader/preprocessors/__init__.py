"""The grader's own nbgrader steps (one per file, as nbgrader's own preprocessors are)."""

from grader.preprocessors.overwritecells import OverwriteCells
from grader.preprocessors.sandboxedexecute import SandboxedExecute, SandboxError
from grader.preprocessors.saveverdicts import MissingVerdict, SaveVerdicts

__all__ = ["MissingVerdict", "OverwriteCells", "SandboxedExecute", "SandboxError", "SaveVerdicts"]
