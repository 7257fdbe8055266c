"""Field metadata helpers shared by the config dataclasses, and the names of secret keys."""

from __future__ import annotations

from typing import Any

# Keys whose values are secrets: masked wherever the config is shown, never logged.
SECRET_KEYS = frozenset({"secret_access_key", "session_token", "zip_password", "api_key"})


def choice(*values: str) -> dict[str, Any]:
    """Field metadata: one of *values*."""
    return {"choices": values}


def limits(low: float, high: float | None = None) -> dict[str, Any]:
    """Field metadata: a number from *low* (to *high*)."""
    return {"min": low, "max": high}
