"""What scripts/test installs covers what the tests use: the collector fixture's rsyslog modules and
the tools tests/unit/test_deploy.py runs, each traced to the Debian package that ships it, so a test
cannot pass here on something installed by hand and fail on a fresh machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.rsyslog import MODULE_PACKAGES, PROTOCOLS, TLS_DRIVERS, Rsyslog, missing_packages
from tests.unit.test_deploy import SYSTEMD_ANALYZE_PACKAGE

REPO = Path(__file__).resolve().parents[2]


def installed_by_scripts_test() -> list[str]:
    """The Debian packages of scripts/test's ``packages=( ... )`` list (comments dropped)."""
    text = (REPO / "scripts" / "test").read_text()
    match = re.search(r"^packages=\((.*?)^\)", text, re.DOTALL | re.MULTILINE)
    assert match, "scripts/test has no packages=( ... ) list"
    return [word for line in match.group(1).splitlines() for word in line.split("#", 1)[0].split()]


def shipped_by(pattern: str) -> str:
    """The installed Debian package holding the file that matches *pattern* (dpkg-query -S)."""
    result = subprocess.run(["dpkg-query", "-S", pattern], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"no installed package has {pattern}: {result.stderr.strip()}"
    return result.stdout.split(":", 1)[0]


def fixture_modules() -> set[str]:
    """Every rsyslog module a collector of any protocol and TLS driver loads."""
    modules: set[str] = set()
    for protocol in PROTOCOLS:
        for driver in TLS_DRIVERS:
            collector = Rsyslog(
                Path("unused"), protocol, port=1, tls_driver=driver, tls_cert_file="c", tls_key_file="k"
            )
            modules.update(collector.modules())
    return modules


def test_scripts_test_lists_its_packages_one_a_line() -> None:
    """scripts/test's package list parses to the packages it installs, with no duplicates."""
    packages = installed_by_scripts_test()
    assert "rsyslog" in packages and len(set(packages)) == len(packages)


def test_every_module_the_collector_loads_has_its_package_installed_by_scripts_test() -> None:
    """Each module of the fixture's configs is in its module table, and that package in scripts/test."""
    modules = fixture_modules()
    assert {"imudp", "imtcp", "lmnsd_gtls", "lmnsd_ossl", "imrelp"} <= modules
    assert modules <= set(MODULE_PACKAGES), modules - set(MODULE_PACKAGES)
    assert set(MODULE_PACKAGES.values()) <= set(installed_by_scripts_test())


@pytest.mark.parametrize("module", sorted(MODULE_PACKAGES))
def test_module_table_names_the_package_that_ships_the_module(module: str) -> None:
    """The fixture's table names the package dpkg says holds the module's shared object."""
    assert shipped_by(f"*/rsyslog/{module}.so") == MODULE_PACKAGES[module]


def test_systemd_analyze_comes_from_a_package_scripts_test_installs() -> None:
    """systemd-analyze (run by test_deploy) is shipped by the package test_deploy names, which
    scripts/test installs."""
    assert shipped_by("*bin/systemd-analyze") == SYSTEMD_ANALYZE_PACKAGE
    assert SYSTEMD_ANALYZE_PACKAGE in installed_by_scripts_test()


def test_ip_comes_from_a_package_scripts_test_installs() -> None:
    """ip (run by tests/support/delaylink.py for its network namespaces) is shipped by iproute2,
    which scripts/test installs."""
    assert shipped_by("*bin/ip") == "iproute2"
    assert "iproute2" in installed_by_scripts_test()


def test_readme_names_every_package_scripts_test_installs() -> None:
    """The README's paragraph on ./scripts/test names each Debian package it installs."""
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("`./scripts/test` installs the Debian packages", 1)[1].split("\n\n", 1)[0]
    for package in installed_by_scripts_test():
        assert f"`{package}`" in paragraph, package


def test_a_module_rsyslogd_could_not_load_is_named_with_its_package() -> None:
    """rsyslogd's load error (as Debian 12's rsyslogd writes it) becomes one line naming the package."""
    log = (
        "rsyslogd: could not load module 'imrelp', errors: trying to load module "
        "/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so: /usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so: "
        "cannot open shared object file: No such file or directory [v8.2302.0 try "
        "https://www.rsyslog.com/e/2066 ]\n"
        "rsyslogd: input module name 'imrelp' is unknown [v8.2302.0 try https://www.rsyslog.com/e/2209 ]\n"
        "2026-12-05T17:04:33.122145+00:00 vm rsyslogd-2066: could not load module 'imrelp', errors: ...\n"
        "rsyslogd: could not load module 'lmnsd_gtls', errors: trying to load module ...\n"
        "rsyslogd: could not load module 'omkafka', errors: trying to load module ...\n"
    )
    assert missing_packages(log) == (
        "rsyslogd could not load module imrelp: install the Debian package rsyslog-relp"
        " (./scripts/test does)\n"
        "rsyslogd could not load module lmnsd_gtls: install the Debian package rsyslog-gnutls"
        " (./scripts/test does)\n"
        "rsyslogd could not load module omkafka: add the Debian package that ships it to MODULE_PACKAGES"
        " and scripts/test\n"
    )
    assert missing_packages('rsyslogd: [origin software="rsyslogd"] start\n') == ""
