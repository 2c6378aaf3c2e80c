"""Shared fixtures: the tiny suite is generated once per test session (it is pure and takes well under a second)."""

from __future__ import annotations

import pytest

from iga.isomers import generate_records, load_domains


@pytest.fixture(scope="session")
def domains():
    return load_domains()


@pytest.fixture(scope="session")
def tiny(domains):
    return generate_records("tiny", seed=0, domains=domains)


@pytest.fixture(scope="session")
def small(domains):
    return generate_records("small", seed=0, domains=domains)
