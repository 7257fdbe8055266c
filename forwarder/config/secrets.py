"""Secrets in the config: masked for display, collected for the log's mask, warned about
when written in a file others may read."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from forwarder.config.fields import SECRET_KEYS
from forwarder.config.model import Config


def redacted(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret value masked, for display."""

    def walk(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: "***"
                if f.name in SECRET_KEYS and getattr(value, f.name)
                else walk(getattr(value, f.name))
                for f in dataclasses.fields(value)
            }
        if isinstance(value, tuple):
            return [walk(item) for item in value]
        return value

    result: dict[str, Any] = walk(config)
    return result


def secret_values(config: Config) -> list[str]:
    """The secret values in *config* and in the AWS_* environment, to be masked in output."""
    sections = [pipeline.source for pipeline in config.pipelines] + [config.coordination]
    found = [getattr(section, key, "") for section in sections for key in sorted(SECRET_KEYS)]
    found += [os.environ.get(name, "") for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return sorted({value for value in found if isinstance(value, str) and value})


def _written(section: Any, path: str) -> list[str]:
    """The secret keys of a raw source section written as literal text (not ${VAR})."""
    if not isinstance(section, dict):
        return []
    return [
        f"{path}.{key}"
        for key in sorted(SECRET_KEYS)
        if isinstance(section.get(key), str) and section[key] and "${" not in section[key]
    ]


def exposed_secrets_warning(path: str | Path) -> str | None:
    """A warning when the file at *path* holds a secret written in it and others may read it.

    A secret given as ``${VAR}`` is not in the file, and a file only its owner may read
    (mode 600) is fine.
    """
    try:
        mode = os.stat(path).st_mode
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not mode & 0o044 or not isinstance(raw, dict):
        return None
    written = _written(raw.get("source"), "source") + _written(raw.get("coordination"), "coordination")
    defaults = raw.get("defaults")
    if isinstance(defaults, dict):
        written += _written(defaults.get("source"), "defaults.source")
    pipelines = raw.get("pipelines")
    for i, item in enumerate(pipelines if isinstance(pipelines, list) else []):
        if isinstance(item, dict):
            written += _written(item.get("source"), f"pipelines[{i}].source")
    if not written:
        return None
    return (
        f"{path} holds {', '.join(written)} and may be read by others (mode {mode & 0o777:o}): "
        f"chmod 600 it, or give the secret as ${{VAR}} from the environment"
    )
