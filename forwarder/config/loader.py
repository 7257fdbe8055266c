"""Load the YAML config into the typed tree (``forwarder.config.model``): ``load_config``.

Two shapes of file:

- one pipeline: the sections ``source``, ``parser``, ``output``, ``checkpoint``, ``batch`` at
  the top (the pipeline is called ``default``);
- many: ``pipelines:``, a list of those sections each with a unique ``name``, and an
  optional ``defaults:`` block merged under every pipeline (a pipeline's own values win;
  ``{pipeline}`` in a default's text becomes the pipeline's name).

``log``, ``metrics``, ``workers`` and ``coordination`` are the process's, at the top in
both. Environment variables are substituted in string values: ``${VAR}`` (an error when
VAR is unset) and ``${VAR:-default}``; a value that is exactly one reference may fill a
number or boolean key (``port: ${SYSLOG_PORT:-514}``).

Every error names the full key path, what was expected and what was given, on one line:
``output.port: expected an integer 1-65535, got "sixty"``, or in a list of pipelines
``pipelines[2] (acme).output.port: ...``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from forwarder.config.checks import distinct, output_defaults
from forwarder.config.checks import pipeline as checked_pipeline
from forwarder.config.coordination import load_coordination
from forwarder.config.model import (
    DEFAULT_PIPELINE,
    MAX_WORKERS,
    Config,
    LogConfig,
    MetricsConfig,
    PipelineConfig,
)
from forwarder.config.tree import build, describe
from forwarder.errors import ConfigError

PIPELINE_SECTIONS = ("source", "parser", "output", "checkpoint", "batch")
PROCESS_SECTIONS = ("log", "metrics", "workers", "coordination")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


class _Substituted(str):
    """A string that came from ``${VAR}`` substitution, so it may stand for a number."""


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: str, path: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in *value*; ``$${`` stays a literal ``${``."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set (set it, or give a default: ${{{name}:-value}})"
        )

    if "${" not in value:
        return value
    parts = value.split("$${")
    result = "${".join(_REFERENCE.sub(replace, part) for part in parts)
    return _Substituted(result)


def _substitute_tree(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute_env(value, path, env)
    if isinstance(value, dict):
        return {k: _substitute_tree(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _merged(defaults: Any, own: Any) -> Any:
    """*own* laid over *defaults*: mappings merged key by key (deeply), anything else replaced."""
    if isinstance(defaults, dict) and isinstance(own, dict):
        result = dict(defaults)
        for key, value in own.items():
            result[key] = _merged(defaults.get(key), value) if key in defaults else value
        return result
    return own


def _named(value: Any, name: str) -> Any:
    """*value* (from ``defaults:``) with ``{pipeline}`` in its texts replaced by *name*."""
    if isinstance(value, str):
        return value.replace("{pipeline}", name)
    if isinstance(value, dict):
        return {k: _named(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_named(v, name) for v in value]
    return value


def _pipeline(raw: Any, where: str, env: Mapping[str, str]) -> PipelineConfig:
    """One pipeline's sections (defaults merged already) as a PipelineConfig; *where* prefixes
    every key path in errors ("" for a single-pipeline file)."""
    raw = _substitute_tree(raw, where, env)
    if isinstance(raw, dict) and "output" in raw:
        raw["output"] = output_defaults(raw["output"], where)
    pipeline: PipelineConfig = build(PipelineConfig, raw, where)
    return checked_pipeline(pipeline, raw, where)


def _pipelines(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[PipelineConfig, ...]:
    """The ``pipelines:`` list, each merged over ``defaults:`` and built."""
    items, defaults = raw["pipelines"], raw.get("defaults") or {}
    stray = [key for key in PIPELINE_SECTIONS if key in raw]
    if stray:
        raise ConfigError(
            f"{stray[0]}: with pipelines: each pipeline has its own {stray[0]} (under pipelines[i]); "
            f"move the top-level {stray[0]} into defaults: to share it"
        )
    if not isinstance(items, list) or not items:
        got = "an empty list" if items == [] else describe(items)
        raise ConfigError(f"pipelines: expected a list of at least one pipeline, got {got}")
    if not isinstance(defaults, dict):
        raise ConfigError(f"defaults: expected a mapping of pipeline sections, got {describe(defaults)}")
    for key in defaults:
        if key not in PIPELINE_SECTIONS:
            raise ConfigError(f"defaults.{key}: unknown key; defaults takes: {', '.join(PIPELINE_SECTIONS)}")
    built: list[PipelineConfig] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(
                f"pipelines[{i}]: expected a mapping (name, source, output...), got {describe(item)}"
            )
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"pipelines[{i}].name: expected a name of letters, digits, '_', '.' or '-' (at most 63, "
                f"used in paths and metric labels), got {describe(name)}"
            )
        merged = _merged(_named(defaults, name), item)
        if not isinstance(merged.get("checkpoint"), dict) or "path" not in merged["checkpoint"]:
            # each its own state directory unless told otherwise
            merged["checkpoint"] = {
                **(merged.get("checkpoint") or {}),
                "path": f"./state/{name}/checkpoint.json",
            }
        built.append(_pipeline(merged, f"pipelines[{i}] ({name})", env))
    distinct(built)
    return tuple(built)


def parse_config(text: str, origin: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Parse YAML *text* into a Config; *origin* names the file in errors."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{origin}: the file is empty; see config.example.yaml")
    if not isinstance(raw, dict):
        raise ConfigError(f"the config file: expected a mapping of keys, got {describe(raw)}")
    env = os.environ if env is None else env
    process = {key: raw[key] for key in PROCESS_SECTIONS if key in raw}
    if "pipelines" in raw or "defaults" in raw:
        if "pipelines" not in raw:
            raise ConfigError("defaults: given without pipelines: (the list of pipelines it applies to)")
        allowed = ("pipelines", "defaults", *PROCESS_SECTIONS, *PIPELINE_SECTIONS)
        unknown = [k for k in raw if k not in allowed]
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: unknown key; the config file takes: pipelines, defaults, "
                f"{', '.join(PROCESS_SECTIONS)}"
            )
        pipelines = _pipelines(raw, env)
    else:
        sections = {key: value for key, value in raw.items() if key not in process}
        for key in sections:
            if key not in PIPELINE_SECTIONS:
                takes = (*PIPELINE_SECTIONS, *PROCESS_SECTIONS, "pipelines", "defaults")
                close = difflib.get_close_matches(str(key), takes, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise ConfigError(f"{key}: unknown key{hint}; the config file takes: {', '.join(takes)}")
        pipelines = (_pipeline({**sections, "name": DEFAULT_PIPELINE}, "", env),)
    process = _substitute_tree(process, "", env)
    log: LogConfig = build(LogConfig, process.get("log"), "log")
    metrics: MetricsConfig = build(MetricsConfig, process.get("metrics"), "metrics")
    if metrics.listen:
        split_listen(metrics.listen)
    workers = checked_workers(process.get("workers", "auto"))
    return Config(pipelines, log, metrics, workers, load_coordination(process.get("coordination")))


def checked_workers(value: Any) -> int | str:
    """``workers``: ``auto``, or a number of processes from 1 (none: the pipelines read) to MAX_WORKERS."""
    if isinstance(value, str) and value.strip().isdigit():  # from ${WORKERS}
        value = int(value)
    if value == "auto":
        return "auto"
    if type(value) is int and 1 <= value <= MAX_WORKERS:
        return value
    raise ConfigError(f"workers: expected auto or an integer 1-{MAX_WORKERS}, got {describe(value)}")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML config file at *path*."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (start from config.example.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    return parse_config(text, str(path), env)


def split_listen(listen: str) -> tuple[str, int]:
    """``metrics.listen`` as (host, port): "127.0.0.1:9108", "[::1]:9108", "0.0.0.0:9108"."""
    host, _, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f'metrics.listen: expected HOST:PORT such as "127.0.0.1:9108" (or "" for off), '
            f"got {describe(listen)}"
        )
    return host, int(port)


def replace_pipelines(config: Config, pipelines: tuple[PipelineConfig, ...]) -> Config:
    """*config* with only *pipelines* (``run --pipeline NAME``)."""
    return dataclasses.replace(config, pipelines=pipelines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last silently: a second ``output:`` section would replace the first). Checked on the
    document as written, before merge keys (``<<: *defaults``) are expanded."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _refuse_repeated_keys(node)
        return node


def _refuse_repeated_keys(root: yaml.Node) -> None:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: the same node again
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                stack += [key, value]
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key.tag, key.value) in keys:
                    problem = f"{key.value!r} is given twice (the second would replace the first)"
                    raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
                keys.add((key.tag, key.value))
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
