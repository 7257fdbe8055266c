"""Unit tests for forwarder.config with many pipelines: pipelines:, defaults:, names, full key paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forwarder.compose import build_reader
from forwarder.config import parse_config, redacted
from forwarder.config.secrets import exposed_secrets_warning
from forwarder.core.workerprocess import processes_for
from forwarder.errors import ConfigError

TWO = """\
defaults:
  source: {bucket: cato-logs, region: eu-west-1}
  output: {protocol: tls, host: siem.example.com, tls: {ca_file: ca.pem}}
pipelines:
  - name: acme
    source: {prefix: acme/}
    output: {hostname: acme}
  - name: beta
    source: {prefix: beta/, bucket: other-bucket}
    output: {port: 1514, tls: {verify: false}}
"""


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert "\n" not in str(info.value)
    return str(info.value)


def test_defaults_are_merged_under_each_pipeline() -> None:
    """Each pipeline gets defaults: merged key by key (deeply); its own values win."""
    config = parse_config(TWO, env={})
    acme, beta = config.pipelines
    assert (acme.name, acme.source.bucket, acme.source.prefix, acme.source.region) == (
        "acme", "cato-logs", "acme/", "eu-west-1"
    )  # fmt: skip
    assert (acme.output.protocol, acme.output.host, acme.output.port, acme.output.hostname) == (
        "tls", "siem.example.com", 6514, "acme"
    )  # fmt: skip
    assert (beta.source.bucket, beta.output.port, beta.output.tls.verify, beta.output.tls.ca_file) == (
        "other-bucket", 1514, False, "ca.pem"
    )  # fmt: skip
    assert config.pipeline("beta") is beta


def test_each_pipeline_gets_its_own_state_directory_by_default() -> None:
    """Without checkpoint.path a listed pipeline keeps its state in ./state/NAME/."""
    acme, beta = parse_config(TWO, env={}).pipelines
    assert acme.checkpoint.path == "./state/acme/checkpoint.json"
    assert beta.checkpoint.path == "./state/beta/checkpoint.json"


def test_pipeline_name_fills_in_the_defaults() -> None:
    """ "{pipeline}" in a default's text becomes the pipeline's name (paths, hostname, prefix)."""
    text = """\
defaults:
  source: {bucket: b, prefix: "{pipeline}/"}
  output: {hostname: "tenant-{pipeline}"}
  checkpoint: {path: "/var/lib/forwarder/{pipeline}/checkpoint.json"}
pipelines:
  - {name: acme}
  - {name: beta, output: {hostname: beta-by-hand}}
"""
    acme, beta = parse_config(text, env={}).pipelines
    assert (acme.source.prefix, acme.output.hostname) == ("acme/", "tenant-acme")
    assert acme.checkpoint.path == "/var/lib/forwarder/acme/checkpoint.json"
    assert (beta.source.prefix, beta.output.hostname) == ("beta/", "beta-by-hand")


def test_a_single_pipeline_file_is_one_pipeline_called_default() -> None:
    """Today's file (sections at the top) stays valid: one pipeline, named default."""
    config = parse_config("source: {bucket: b}\n", env={})
    assert [p.name for p in config.pipelines] == ["default"]
    assert config.pipeline().checkpoint.path == "./state/checkpoint.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TWO.replace("port: 1514", "port: sixty"),
         'pipelines[1] (beta).output.port: expected an integer 1-65535, got "sixty"'),
        (TWO.replace("prefix: acme/", "prefx: acme/"),
         'pipelines[0] (acme).source.prefx: unknown key (did you mean "prefix"?); pipelines[0] (acme).source '
         "takes: bucket, prefix, region, endpoint_url, access_key_id, secret_access_key, session_token, "
         "profile, role_arn, external_id, role_session_name, s3_retry_mode, s3_max_attempts, "
         "connect_timeout_secs, read_timeout_secs, download_dir, max_attempts, on_bad_file, "
         "bad_file_retry_secs, max_member_bytes, prefetch_files, prefetch_bytes, kind, key_pattern, "
         "discovery, key_template, max_gap_files, zip_password, poll_interval_secs, start"),
        (TWO.replace("hostname: acme", "path: /tmp/x.log"),
         "pipelines[0] (acme).output.path: only applies to protocol file, but protocol is tls "
         "(remove pipelines[0] (acme).output.path or change pipelines[0] (acme).output.protocol)"),
        (TWO.replace("name: beta", "name: acme"),
         "pipelines[1] (acme).name: another pipeline is called 'acme' (names must be unique)"),
        (TWO.replace("name: beta", "name: 'be ta'"),
         "pipelines[1].name: expected a name of letters, digits, '_', '.' or '-' (at most 63, "
         'used in paths and metric labels), got "be ta"'),
        ("pipelines:\n  - source: {bucket: b}\n",
         "pipelines[0].name: expected a name of letters, digits, '_', '.' or '-' (at most 63, "
         "used in paths and metric labels), got nothing (null)"),
        ("pipelines: []\n", "pipelines: expected a list of at least one pipeline, got an empty list"),
        ("pipelines: {a: 1}\n", "pipelines: expected a list of at least one pipeline, got a mapping"),
        ("pipelines:\n  - name: a\n", "pipelines[0] (a).source: required key is missing"),
        (TWO + "source: {bucket: b}\n",
         "source: with pipelines: each pipeline has its own source (under pipelines[i]); "
         "move the top-level source into defaults: to share it"),
        ("defaults: {source: {bucket: b}}\n",
         "defaults: given without pipelines: (the list of pipelines it applies to)"),
        ("defaults: {metrics: {}}\npipelines: [{name: a, source: {bucket: b}}]\n",
         "defaults.metrics: unknown key; defaults takes: source, parser, output, checkpoint, batch"),
        ("pipelines: [{name: a, source: {bucket: b}}]\nsorce: {}\n",
         "sorce: unknown key; the config file takes: pipelines, defaults, log, metrics, workers, "
         "coordination"),
        ("pipelines: [{name: a, source: {bucket: b}}, {name: b, source: {bucket: b}}]\n"
         "defaults: {checkpoint: {path: /tmp/one.json}}\n",
         "pipelines[1] (b).checkpoint.path: /tmp/one.json is also pipelines[0] (a)'s; give each pipeline "
         'its own (e.g. defaults: {checkpoint: {path: "/var/lib/forwarder/{pipeline}/checkpoint.json"}})'),
        ("pipelines: [{name: a, source: {bucket: b}}, {name: b, source: {bucket: b}}]\n"
         "defaults: {parser: {dead_letter_path: /tmp/dead.jsonl}}\n",
         "pipelines[1] (b).parser.dead_letter_path: /tmp/dead.jsonl is also pipelines[0] (a)'s; give each "
         "pipeline its own (e.g. defaults: "
         '{checkpoint: {path: "/var/lib/forwarder/{pipeline}/checkpoint.json"}})'),
    ],
)  # fmt: skip
def test_errors_name_the_full_key_path(text: str, expected: str) -> None:
    """Every error in a list of pipelines names the pipeline (index and name) and the key."""
    assert error(text) == expected


def test_environment_errors_name_the_pipeline() -> None:
    """A missing ${VAR} in a pipeline's section names that pipeline's key."""
    text = "pipelines:\n  - name: acme\n    source: {bucket: b, zip_password: '${ACME_ZIP}'}\n"
    assert error(text).startswith("pipelines[0] (acme).source.zip_password: environment variable ACME_ZIP")


def test_pipeline_lookup_by_name() -> None:
    """config.pipeline(name) finds one; an unknown name or no name with several is an error."""
    config = parse_config(TWO, env={})
    with pytest.raises(
        ConfigError, match=r"--pipeline gamma: no pipeline of that name \(the config has: acme, beta\)"
    ):
        config.pipeline("gamma")
    with pytest.raises(ConfigError, match="2 pipelines"):
        config.pipeline()


def test_redacted_masks_every_pipelines_secrets() -> None:
    """Secrets of every pipeline show as ***."""
    text = TWO.replace("source: {prefix: acme/}", "source: {prefix: acme/, zip_password: zippy}")
    shown = redacted(parse_config(text, env={}))
    assert [p["source"]["zip_password"] for p in shown["pipelines"]] == ["***", ""]
    assert "zippy" not in repr(shown)


def test_a_secret_written_in_a_pipeline_is_warned_about(tmp_path: Path) -> None:
    """A literal secret in defaults or a pipeline of a readable file gets the chmod warning."""
    path = tmp_path / "f.yaml"
    path.write_text(
        "defaults: {source: {bucket: b, secret_access_key: s3cr3t, access_key_id: AK}}\n"
        "pipelines: [{name: a, source: {zip_password: pw}}]\n"
    )
    path.chmod(0o644)
    warning = exposed_secrets_warning(path)
    assert (
        warning is not None
        and "defaults.source.secret_access_key, pipelines[0].source.zip_password" in warning
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("external_id: x",
         "source.external_id: given without role_arn (the role whose trust policy asks for it)"),
        ("role_arn: admin",
         'source.role_arn: expected a role ARN such as "arn:aws:iam::123456789012:role/cato-events", '
         'got "admin"'),
    ],
)  # fmt: skip
def test_role_settings_are_checked(source: str, expected: str) -> None:
    """external_id needs role_arn; role_arn must be a role's ARN."""
    assert error(f"source: {{bucket: b, {source}}}\n") == expected


def test_role_settings_are_taken() -> None:
    """role_arn, external_id and role_session_name reach the source settings."""
    text = "source: {bucket: b, role_arn: 'arn:aws:iam::123456789012:role/cato', external_id: '1234'}\n"
    source = parse_config(text, env={}).pipeline().source
    assert (source.role_arn, source.external_id, source.role_session_name) == (
        "arn:aws:iam::123456789012:role/cato", "1234", "forwarder"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "env", "workers"),
    [
        ("source: {bucket: b}\n", {}, "auto"),
        ("workers: auto\nsource: {bucket: b}\n", {}, "auto"),
        ("workers: 1\nsource: {bucket: b}\n", {}, 1),
        ("workers: 8\npipelines: [{name: a, source: {bucket: b}}]\n", {}, 8),
        ("workers: ${WORKERS:-auto}\nsource: {bucket: b}\n", {"WORKERS": "3"}, 3),
        ("workers: ${WORKERS:-auto}\nsource: {bucket: b}\n", {}, "auto"),
    ],
)
def test_workers_is_the_processs_auto_or_a_number(text: str, env: dict[str, str], workers: object) -> None:
    """workers sits at the top (beside log and metrics, for every pipeline): auto by default,
    a number, or either from the environment."""
    assert parse_config(text, env=env).workers == workers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workers: 0\nsource: {bucket: b}\n", "workers: expected auto or an integer 1-256, got 0"),
        ("workers: many\nsource: {bucket: b}\n", 'workers: expected auto or an integer 1-256, got "many"'),
        ("workers: true\nsource: {bucket: b}\n", "workers: expected auto or an integer 1-256, got true"),
        ("workers: 300\nsource: {bucket: b}\n", "workers: expected auto or an integer 1-256, got 300"),
        ("pipelines: [{name: a, workers: 2, source: {bucket: b}}]\n",
         "pipelines[0] (a).workers: unknown key; pipelines[0] (a) takes: source, name, parser, output, "
         "checkpoint, batch"),
        ("defaults: {workers: 2}\npipelines: [{name: a, source: {bucket: b}}]\n",
         "defaults.workers: unknown key; defaults takes: source, parser, output, checkpoint, batch"),
    ],
)  # fmt: skip
def test_workers_errors_say_what_is_expected(text: str, expected: str) -> None:
    """A workers value that is not auto or 1-256, or workers given per pipeline, is refused by name."""
    assert error(text) == expected


def test_auto_is_the_cores_this_process_may_use() -> None:
    """workers: auto starts one process per core the forwarder may run on; 1 starts none."""
    assert processes_for("auto") == len(os.sched_getaffinity(0))
    assert processes_for(1) == 1 and processes_for(4) == 4
    assert build_reader(1) is None
