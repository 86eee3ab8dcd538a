"""Fixtures for scale-out: a second RabbitMQ node (a province's own broker).

Owns: the second node's lifetime for the run (tests/scale/site_node.py starts and stops it).
The PostgreSQL schema several hub processes share is tests/conftest.py's pg_schema_url.
Must not: hold test logic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from site_node import SiteNode


@pytest.fixture(scope="session")
def site_node(broker) -> Iterator[SiteNode]:
    """A province's own broker, started once for the run and stopped at its end."""
    node = SiteNode(f"hubsite{os.getpid()}")
    try:
        node.start()
    except BaseException:
        node.stop()
        raise
    yield node
    node.stop()


