"""Unit tests for forwarder.config: one typed tree, unknown keys rejected, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forwarder.config import Config, load_config, parse_config, redacted, substitute_env
from forwarder.config import loader as config_module
from forwarder.errors import ConfigError

MINIMAL = "source:\n  bucket: cato-logs\n"


def config_error(text: str, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that parsing *text* raises."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_minimal_config_takes_the_documented_defaults() -> None:
    """A config naming only the bucket gets tcp to 127.0.0.1:514, RFC 5424, octet counting."""
    config = parse_config(MINIMAL, env={})
    assert isinstance(config, Config)
    assert config.pipeline().source.bucket == "cato-logs"
    assert config.pipeline().source.start == "earliest"
    assert config.pipeline().source.key_pattern == r"CATO(\d+)\.zip$"
    out = config.pipeline().output
    assert (out.protocol, out.host, out.port) == ("tcp", "127.0.0.1", 514)
    assert (out.framing, out.header, out.facility) == ("octet_counting", "rfc5424", "local0")
    assert out.tls.verify is True
    assert config.pipeline().parser.format == "auto"
    assert config.pipeline().batch.max_events == 1000


@pytest.mark.parametrize(
    ("output", "port", "header"),
    [
        ("protocol: tcp", 514, "rfc5424"),
        ("protocol: udp", 514, "rfc5424"),
        ("protocol: tls", 6514, "rfc5424"),
        ("protocol: relp", 20514, "rfc5424"),
        ("protocol: relp-tls\n  tls: {ca_file: ca.pem}", 20514, "rfc5424"),
        ("protocol: file\n  path: /tmp/events.log", 514, "none"),
        ("protocol: stdout", 514, "none"),
        ("protocol: tls\n  port: 1514", 1514, "rfc5424"),
        ("protocol: file\n  path: out.log\n  header: rfc3164", 514, "rfc3164"),
    ],
)
def test_defaults_depend_on_the_protocol(output: str, port: int, header: str) -> None:
    """tls defaults to port 6514, relp and relp-tls to 20514, file and stdout to no header;
    explicit values win."""
    config = parse_config(f"{MINIMAL}output:\n  {output}\n", env={})
    assert (config.pipeline().output.port, config.pipeline().output.header) == (port, header)


def test_floats_accept_integers_and_keep_float_type() -> None:
    """A number key given as an integer (poll_interval_secs: 5) is stored as a float."""
    config = parse_config(f"{MINIMAL}  poll_interval_secs: 5\n", env={})
    assert config.pipeline().source.poll_interval_secs == 5.0
    assert isinstance(config.pipeline().source.poll_interval_secs, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{MINIMAL}output:\n  protocl: tcp\n", 'output.protocl: unknown key (did you mean "protocol"?)'),
        ("sorce:\n  bucket: b\n", 'sorce: unknown key (did you mean "source"?)'),
        (f"{MINIMAL}  poll_interval: 5\n",
         'source.poll_interval: unknown key (did you mean "poll_interval_secs"?)'),
        (f"{MINIMAL}output:\n  protocol: tls\n  tls:\n    ca_fle: ca.pem\n",
         'output.tls.ca_fle: unknown key (did you mean "ca_file"?)'),
        (f"{MINIMAL}batch:\n  max_event: 10\n",
         'batch.max_event: unknown key (did you mean "max_events"?)'),
    ],
)  # fmt: skip
def test_misspelt_key_is_named_with_its_path_and_a_suggestion(text: str, expected: str) -> None:
    """A misspelt key is reported on one line with its full path and the closest valid name."""
    message = config_error(text)
    assert message.startswith(expected)


def test_unknown_key_lists_what_the_section_takes() -> None:
    """An unknown key with no close match gets no guess, but the section's valid keys."""
    message = config_error(f"{MINIMAL}checkpoint:\n  zzz: 1\n")
    assert message == "checkpoint.zzz: unknown key; checkpoint takes: path, interval_secs, quarantine_path"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("output:\n  port: sixty", 'output.port: expected an integer 1-65535, got "sixty"'),
        ("output:\n  port: 70000", "output.port: expected an integer 1-65535, got 70000"),
        ("output:\n  port: 0", "output.port: expected an integer 1-65535, got 0"),
        ("output:\n  port: true", "output.port: expected an integer 1-65535, got true"),
        ("output:\n  port: 51.4", "output.port: expected an integer 1-65535, got 51.4"),
        ("output:\n  port:", "output.port: expected an integer 1-65535, got nothing (null)"),
        ("output:\n  protocol: tcpp",
         'output.protocol: expected one of udp, tcp, tls, relp, relp-tls, file, stdout, got "tcpp"'),
        ("output:\n  protocol: tls\n  tls:\n    verify: 'no'",
         'output.tls.verify: expected true or false, got "no"'),
        ("output:\n  facility: local9",
         'output.facility: expected one of kern, user, mail, daemon, auth, syslog, lpr, news, '
         'uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron, local0, local1, '
         'local2, local3, local4, local5, local6, local7, got "local9"'),
        ("output:\n  app_name: ' '", 'output.app_name: expected a non-empty string, got " "'),
        ("output:\n  host: [a, b]", "output.host: expected a string, got a list"),
        ("output: [1, 2]", "output: expected a mapping of keys, got a list"),
        ("batch:\n  max_events: 0", "batch.max_events: expected an integer 1-1000000, got 0"),
        ("output:\n  max_events_per_sec: -1",
         "output.max_events_per_sec: expected an integer >= 0, got -1"),
        ("parser:\n  max_record_bytes: 10",
         "parser.max_record_bytes: expected an integer >= 64, got 10"),
        ("source:\n  bucket: b\n  poll_interval_secs: 0",
         "source.poll_interval_secs: expected a number >= 0.1, got 0"),
        ("source:\n  bucket: b\n  prefix: 5", "source.prefix: expected a string, got 5"),
        ("source:\n  bucket: ''", 'source.bucket: expected a non-empty string, got ""'),
        ("output:\n  retry_initial_secs: 5\n  retry_max_secs: 2",
         "output.retry_max_secs: expected a number >= output.retry_initial_secs (5), got 2"),
        ("output:\n  max_unacked_bytes: 0", "output.max_unacked_bytes: expected an integer >= 1, got 0"),
        ("output:\n  protocol: relp\n  relp_window: 0",
         "output.relp_window: expected an integer 1-100000, got 0"),
        ("checkpoint:\n  interval_secs: -1", "checkpoint.interval_secs: expected a number >= 0, got -1"),
    ],
)  # fmt: skip
def test_wrong_value_names_key_expectation_and_given_value(text: str, expected: str) -> None:
    """A wrong value gives exactly "<key path>: expected <what>, got <value>"."""
    if not text.startswith("source:"):
        text = MINIMAL + text
    assert config_error(text + "\n") == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("protocol: udp\n  framing: newline",
         "output.framing: only applies to protocol tcp or tls, but protocol is udp "
         "(remove output.framing or change output.protocol)"),
        ("protocol: tcp\n  relp_window: 1024",
         "output.relp_window: only applies to protocol relp or relp-tls, but protocol is tcp "
         "(remove output.relp_window or change output.protocol)"),
        ("protocol: udp\n  max_unacked_bytes: 1048576",
         "output.max_unacked_bytes: only applies to protocol tcp, tls, relp or relp-tls, but protocol "
         "is udp (remove output.max_unacked_bytes or change output.protocol)"),
        ("protocol: tcp\n  tls:\n    ca_file: ca.pem",
         "output.tls: only applies to protocol tls or relp-tls, but protocol is tcp "
         "(remove output.tls or change output.protocol)"),
        ("tls:\n    verify: false",
         "output.tls: only applies to protocol tls or relp-tls, but protocol is tcp "
         "(remove output.tls or change output.protocol)"),
        ("protocol: tcp\n  path: /tmp/x.log",
         "output.path: only applies to protocol file, but protocol is tcp "
         "(remove output.path or change output.protocol)"),
        ("protocol: file\n  path: x.log\n  host: collector",
         "output.host: only applies to protocol udp, tcp, tls, relp or relp-tls, but protocol is file "
         "(remove output.host or change output.protocol)"),
        ("protocol: stdout\n  port: 514",
         "output.port: only applies to protocol udp, tcp, tls, relp or relp-tls, but protocol is stdout "
         "(remove output.port or change output.protocol)"),
        ("protocol: file",
         "output.path: required with protocol file (the file to append events to)"),
        ("protocol: tls\n  tls:\n    key_file: client.key",
         "output.tls.key_file: given without output.tls.cert_file (the client certificate)"),
    ],
)  # fmt: skip
def test_settings_that_do_not_fit_the_protocol_are_rejected(output: str, expected: str) -> None:
    """framing needs tcp/tls, a tls block needs tls, path needs file (and file needs path)."""
    assert config_error(f"{MINIMAL}output:\n  {output}\n") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("output:\n  port: 514\n", "source: required key is missing"),
        ("source:\n  prefix: logs/\n", "source.bucket: required key is missing"),
        ("source:\n", "source.bucket: required key is missing"),
    ],
)
def test_missing_bucket_is_reported(text: str, expected: str) -> None:
    """A config without source or source.bucket names the missing key."""
    assert config_error(text) == expected


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${BUCKET}", {"BUCKET": "from-env"}, "from-env"),
        ("${BUCKET:-fallback}", {}, "fallback"),
        ("${BUCKET:-fallback}", {"BUCKET": ""}, "fallback"),
        ("${BUCKET:-fallback}", {"BUCKET": "set"}, "set"),
        ("${BUCKET}", {"BUCKET": ""}, ""),
        ("pre-${A}-${B:-b}-post", {"A": "a"}, "pre-a-b-post"),
        ("$${BUCKET}", {"BUCKET": "x"}, "${BUCKET}"),
        ("no reference", {}, "no reference"),
    ],
)
def test_substitute_env(value: str, env: dict[str, str], expected: str) -> None:
    """${VAR} takes the variable, ${VAR:-default} the default when unset or empty, $${ is literal."""
    assert substitute_env(value, "source.bucket", env) == expected


def test_environment_fills_a_string_key() -> None:
    """A ${VAR} in a string value is replaced from the environment passed to parse_config."""
    config = parse_config("source:\n  bucket: ${CATO_BUCKET}\n", env={"CATO_BUCKET": "prod-logs"})
    assert config.pipeline().source.bucket == "prod-logs"
    assert type(config.pipeline().source.bucket) is str


@pytest.mark.parametrize(
    ("value", "env", "port"),
    [
        ("${SYSLOG_PORT}", {"SYSLOG_PORT": "6514"}, 6514),
        ("${SYSLOG_PORT:-1514}", {}, 1514),
        ('"${SYSLOG_PORT:-1514}"', {"SYSLOG_PORT": "2514"}, 2514),
    ],
)
def test_environment_number_fills_a_number_key(value: str, env: dict[str, str], port: int) -> None:
    """A value that is one ${VAR} reference may fill an integer key such as output.port."""
    config = parse_config(f"{MINIMAL}output:\n  port: {value}\n", env=env)
    assert config.pipeline().output.port == port
    assert type(config.pipeline().output.port) is int


def test_environment_fills_boolean_and_float_keys() -> None:
    """${VAR} holding "false" or "2.5" fills a boolean or a number key."""
    text = (
        f"{MINIMAL}  poll_interval_secs: ${{POLL}}\n"
        "output:\n  protocol: tls\n  tls:\n    verify: ${VERIFY}\n"
    )
    config = parse_config(text, env={"POLL": "2.5", "VERIFY": "false"})
    assert config.pipeline().source.poll_interval_secs == 2.5
    assert config.pipeline().output.tls.verify is False


@pytest.mark.parametrize("value", ["sixty", "[", "{", "@x", "%x", "6514:", ""])
def test_environment_value_that_is_not_a_number_is_a_config_error(value: str) -> None:
    """Whatever text a variable holds, a bad number is a one-line ConfigError, never a crash."""
    message = config_error(f"{MINIMAL}output:\n  port: ${{PORT}}\n", env={"PORT": value})
    assert message == f'output.port: expected an integer 1-65535, got "{value}"'


def test_missing_environment_variable_names_the_key() -> None:
    """An unset ${VAR} without default names the key path and the variable."""
    message = config_error(f"{MINIMAL}output:\n  host: ${{SYSLOG_HOST}}\n")
    assert message == (
        "output.host: environment variable SYSLOG_HOST is not set "
        "(set it, or give a default: ${SYSLOG_HOST:-value})"
    )


def test_key_pattern_needs_a_group() -> None:
    """source.key_pattern without a capturing group is rejected: group 1 is the sequence."""
    message = config_error(f"{MINIMAL}  key_pattern: 'CATO\\d+\\.zip$'\n")
    assert message.startswith("source.key_pattern: expected a regular expression whose group 1")
    assert message.endswith("(no group)")


def test_key_pattern_must_compile() -> None:
    """An invalid regular expression in source.key_pattern is reported as such."""
    message = config_error(f"{MINIMAL}  key_pattern: 'CATO(\\d+'\n")
    assert message.startswith("source.key_pattern: not a valid regular expression (")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("earliest", "earliest"),
        ("latest", "latest"),
        ("0", 0),
        ("7007", 7007),
        ("'7007'", 7007),
        ("${START}", 42),
    ],
)
def test_start_values(value: str, expected: int | str) -> None:
    """source.start takes earliest, latest or a file sequence number (also given as a string)."""
    config = parse_config(f"{MINIMAL}  start: {value}\n", env={"START": "42"})
    assert config.pipeline().source.start == expected
    assert type(config.pipeline().source.start) is type(expected)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("-1", "-1"), ("yesterday", '"yesterday"'), ("true", "true"), ("1.5", "1.5"), ("[]", "a list")],
)
def test_bad_start_values(value: str, shown: str) -> None:
    """Anything but earliest, latest or a non-negative integer is rejected, showing the value."""
    message = config_error(f"{MINIMAL}  start: {value}\n")
    assert message == (f"source.start: expected earliest, latest or a file sequence number, got {shown}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("  access_key_id: AKIA\n",
         "source.access_key_id: access_key_id and secret_access_key go together "
         "(give both, or neither to use boto3's credential chain)"),
        ("  secret_access_key: s\n",
         "source.access_key_id: access_key_id and secret_access_key go together "
         "(give both, or neither to use boto3's credential chain)"),
        ("  profile: p\n  access_key_id: AKIA\n  secret_access_key: s\n",
         "source.profile: give either profile or access_key_id/secret_access_key, not both"),
    ],
)  # fmt: skip
def test_credentials_must_be_consistent(source: str, expected: str) -> None:
    """Access key id and secret come together, and not together with a profile."""
    assert config_error(MINIMAL + source) == expected


def test_redacted_masks_secrets() -> None:
    """redacted() masks every non-empty secret, keeps empty ones and everything else visible."""
    text = (
        "source:\n  bucket: b\n  access_key_id: AKIAEXAMPLE\n  secret_access_key: sekrit\n"
        "  zip_password: zippw\n"
    )
    shown = redacted(parse_config(text, env={}))["pipelines"][0]
    assert shown["source"]["secret_access_key"] == "***"
    assert shown["source"]["zip_password"] == "***"
    assert shown["source"]["session_token"] == ""
    assert shown["source"]["access_key_id"] == "AKIAEXAMPLE"
    assert shown["output"]["tls"]["verify"] is True
    assert "sekrit" not in repr(shown) and "zippw" not in repr(shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "forwarder.yaml: the file is empty; see config.example.yaml"),
        ("# only a comment\n", "forwarder.yaml: the file is empty; see config.example.yaml"),
        ("source: [\n", "forwarder.yaml:2:1: not valid YAML: "),
        ("- a\n- b\n", "the config file: expected a mapping of keys, got a list"),
        (
            "source:\n  bucket: b\noutput:\n  port: 1514\noutput:\n  host: siem\n",
            "forwarder.yaml:5:1: not valid YAML: 'output' is given twice (the second would replace",
        ),
        ("source: {bucket: a, bucket: b}\n", "forwarder.yaml:1:21: not valid YAML: 'bucket' is given twice"),
    ],
)
def test_unusable_files(text: str, expected: str) -> None:
    """Empty or invalid YAML is reported with the file name (and line:column for syntax)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, origin="forwarder.yaml", env={})
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    """load_config reads the YAML file at the path, substituting from the given environment."""
    path = tmp_path / "forwarder.yaml"
    path.write_text("source:\n  bucket: ${B}\n", encoding="utf-8")
    assert load_config(path, env={"B": "bkt"}).pipeline().source.bucket == "bkt"


def test_load_config_missing_file(tmp_path: Path) -> None:
    """A missing config file is one line naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: config file not found (start from config.example.yaml)"


def test_load_config_unreadable_file(tmp_path: Path) -> None:
    """A path that cannot be read (a directory) is a ConfigError naming the path."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert str(info.value).startswith(f"{tmp_path}: cannot read the config file: ")


def test_config_example_is_valid_and_shows_the_defaults() -> None:
    """config.example.yaml loads as it is, and its values are the documented defaults."""
    from pathlib import Path

    from forwarder.config import CheckpointConfig, OutputConfig, ParserConfig, load_config

    config = load_config(Path(__file__).resolve().parents[2] / "config.example.yaml")
    assert config.pipeline().source.bucket == "cato-logs" and config.pipeline().source.prefix == "ACCESSKEY/"
    assert config.pipeline().output == OutputConfig()
    assert config.pipeline().parser == ParserConfig()
    assert config.pipeline().checkpoint == CheckpointConfig()


# --- metrics, log, and secrets kept out of sight --------------------------------------


def test_metrics_and_log_sections_take_their_defaults() -> None:
    """Without a metrics section the endpoint is off; log keeps 60 s progress and repeat windows."""
    config = parse_config(MINIMAL, env={})
    assert config.metrics.listen == "" and config.metrics.stuck_after_secs == 600
    assert config.metrics.probe_interval_secs == 5
    assert config.log.progress_interval_secs == 60 and config.log.repeat_window_secs == 60


def test_config_example_shows_the_metrics_and_log_defaults() -> None:
    """config.example.yaml's metrics and log sections and workers are the defaults (endpoint off)."""
    from forwarder.config import LogConfig, MetricsConfig

    config = load_config(Path(__file__).resolve().parents[2] / "config.example.yaml")
    assert config.metrics == MetricsConfig() and config.log == LogConfig()
    assert config.workers == Config.__dataclass_fields__["workers"].default == "auto"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:9108", "127.0.0.1", 9108), ("0.0.0.0:1", "0.0.0.0", 1), ("[::1]:9108", "::1", 9108)],
)
def test_metrics_listen_is_host_and_port(listen: str, host: str, port: int) -> None:
    """metrics.listen is HOST:PORT; an IPv6 host goes in brackets."""
    from forwarder.config import split_listen

    assert parse_config(MINIMAL + f'metrics:\n  listen: "{listen}"\n', env={}).metrics.listen == listen
    assert split_listen(listen) == (host, port)


@pytest.mark.parametrize("listen", ["9108", ":9108", "localhost:", "localhost:0", "h:70000", "h:x"])
def test_bad_metrics_listen_is_refused(listen: str) -> None:
    """A listen address without a host or a port 1-65535 is one line naming metrics.listen."""
    assert config_error(MINIMAL + f'metrics:\n  listen: "{listen}"\n') == (
        f'metrics.listen: expected HOST:PORT such as "127.0.0.1:9108" (or "" for off), got "{listen}"'
    )


def test_metrics_section_rejects_unknown_keys() -> None:
    """The metrics section is checked like the others."""
    assert config_error(MINIMAL + "metrics:\n  port: 9108\n").startswith("metrics.port: unknown key")


def test_a_secret_of_the_wrong_type_is_not_echoed() -> None:
    """An unquoted numeric zip password is refused without showing it."""
    message = config_error(MINIMAL + "  zip_password: 73918245\n")
    assert message == 'source.zip_password: expected a string (quote it: "..."); a secret, so not shown'
    assert "73918245" not in message


def test_secret_values_are_the_configs_and_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    """secret_values: the non-empty secrets of the config and of AWS_SECRET_ACCESS_KEY/SESSION_TOKEN."""
    from forwarder.config import secret_values

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    text = MINIMAL + "  access_key_id: AK\n  secret_access_key: sk\n  zip_password: zp\n"
    config = parse_config(text, env={})
    assert sorted(secret_values(config)) == ["env-secret", "sk", "zp"]


@pytest.mark.parametrize(
    ("source", "mode", "warned"),
    [
        ("  zip_password: literal-pw\n", 0o644, ["source.zip_password"]),
        ("  zip_password: literal-pw\n", 0o640, ["source.zip_password"]),  # group may read it
        ("  zip_password: literal-pw\n", 0o600, []),
        ("  zip_password: ${ZIP}\n", 0o644, []),
        ('  zip_password: ""\n', 0o644, []),
        (
            "  access_key_id: AK\n  secret_access_key: sk\n  session_token: tok\n",
            0o604,
            ["source.secret_access_key", "source.session_token"],
        ),
    ],
)
def test_readable_config_with_a_written_secret_is_warned_about(
    tmp_path: Path, source: str, mode: int, warned: list[str]
) -> None:
    """A secret written in the file (not ${VAR}), and group or others may read it: a warning."""
    from forwarder.config import exposed_secrets_warning

    path = tmp_path / "forwarder.yaml"
    path.write_text(MINIMAL + source, encoding="utf-8")
    path.chmod(mode)
    warning = exposed_secrets_warning(path)
    if not warned:
        assert warning is None
        return
    assert warning == (
        f"{path} holds {', '.join(warned)} and may be read by others (mode {mode:o}): "
        "chmod 600 it, or give the secret as ${VAR} from the environment"
    )
    assert "literal-pw" not in warning and "sk" not in warning.replace("secret_access_key", "")


@pytest.mark.parametrize(
    ("output", "max_message_bytes", "max_events_per_sec"),
    [
        ("protocol: udp", 65507, 2000),
        ("protocol: tcp", 1048576, 0),
        ("protocol: tls", 1048576, 0),
        ("protocol: relp", 1048576, 0),
        ("protocol: file\n  path: out.log", 0, 0),
        ("protocol: stdout", 0, 0),
        ("protocol: udp\n  max_events_per_sec: 0\n  max_message_bytes: 1472", 1472, 0),
        ("protocol: tcp\n  max_message_bytes: 0\n  max_events_per_sec: 500", 0, 500),
    ],
)
def test_message_size_and_pacing_defaults_depend_on_the_protocol(
    output: str, max_message_bytes: int, max_events_per_sec: int
) -> None:
    """udp: 65,507 bytes, paced at 2,000/s; tcp/tls/relp: 1 MiB; file/stdout: no limit; given values win."""
    out = parse_config(f"{MINIMAL}output:\n  {output}\n", env={}).pipeline().output
    assert (out.max_message_bytes, out.max_events_per_sec, out.oversize) == (
        max_message_bytes,
        max_events_per_sec,
        "truncate",
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("max_message_bytes: 100", "output.max_message_bytes: expected 0 (no limit) or an integer >= 480 "
         "(RFC 5424's least a collector must take), got 100"),
        ("protocol: udp\n  max_message_bytes: 70000", "output.max_message_bytes: expected an integer "
         "480-65507 with protocol udp (the largest UDP payload is 65507 bytes), got 70000"),
        ("protocol: udp\n  max_message_bytes: 0", "output.max_message_bytes: expected an integer "
         "480-65507 with protocol udp (the largest UDP payload is 65507 bytes), got 0"),
        ("oversize: cut", 'output.oversize: expected one of truncate, split, drop, got "cut"'),
    ],
)  # fmt: skip
def test_bad_message_size_settings_are_refused(output: str, expected: str) -> None:
    """A limit below RFC 5424's 480 octets, over a UDP datagram, or an unknown policy: one line."""
    assert config_error(f"{MINIMAL}output:\n  {output}\n") == expected


def test_merge_keys_still_override() -> None:
    """YAML merge keys ("<<: *defaults") are not duplicates: the keys given beside them win,
    also when a merged mapping merges another (found in review: the check once ran after
    PyYAML had expanded the merge in place, and saw the key twice)."""
    nested = "a:\n  b: &mid\n    <<: {k: 1}\n    k: 2\nc:\n  <<: *mid\n"
    assert yaml.load(nested, Loader=config_module._UniqueKeyLoader) == yaml.safe_load(nested)  # noqa: S506
    text = "source:\n  bucket: b\noutput:\n  <<: {port: 1514, host: a}\n  host: siem\n"
    config = parse_config(text, env={})
    assert (config.pipeline().output.host, config.pipeline().output.port) == ("siem", 1514)
