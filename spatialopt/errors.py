"""The project's error types: one clear message for the user, no traceback wall."""

from __future__ import annotations


class SpatialoptError(Exception):
    """Base class of every error spatialopt reports to a user."""


class ConfigError(SpatialoptError, ValueError):
    """A configuration value is wrong. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


class DataError(SpatialoptError, ValueError):
    """A file or array handed in by the user is unreadable, malformed or inconsistent."""
