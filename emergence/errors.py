"""The errors emergence raises on bad input: each message is one line that says what to do."""

from __future__ import annotations


class EmergenceError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class RunDirError(EmergenceError):
    """The run directory cannot be created or written."""


class CheckpointNotFoundError(EmergenceError):
    """No (valid) checkpoint where one was asked for."""


class CorruptCheckpointError(EmergenceError):
    """A file that is not a readable, intact emergence checkpoint."""


class IncompatibleCheckpointError(EmergenceError):
    """A checkpoint whose arrays do not fit the task's state (structure, shape, dtype)."""


class ConfigMismatchError(EmergenceError):
    """The task's config changed in a way the checkpoint cannot honour."""


class CheckpointWriteError(EmergenceError):
    """A checkpoint could not be written; the previous ones are intact."""


class UsageError(EmergenceError):
    """A command line or a user's setting is wrong (unknown flag, bad value, missing argument)."""


class RunDirLockedError(RunDirError):
    """Another process holds the run dir's lock: it is writing there now."""


class RunDirInUseError(RunDirError):
    """A fresh start in a run dir that already holds another run's checkpoints or metrics."""
