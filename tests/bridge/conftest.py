from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from cloud_bridge.store import migrate
from doorstep.db import create_durable_engine


@pytest.fixture
def bridge_engine(bridge_database: str) -> Iterator[Engine]:
    """A migrated bridge database (SQLite or PostgreSQL), with no worker running."""
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    yield engine
    engine.dispose()
