"""The demo database in its two dialects: the real ERPGo's schema (the default) and the guide's.

A test module imports the fixtures it uses: guide_database (`guide_dsn`), demo_database (`demo_dsn`),
demo_database_copy (`demo_copy_of`).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
DIALECTS = {"real": ("schema.sql", "seed.sql"), "guide": ("schema_guide.sql", "seed_guide.sql")}


async def load_demo(dsn: str, dialect: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name in DIALECTS[dialect]:
            await conn.execute((DEMO_DIR / name).read_text())
    finally:
        await conn.close()


@pytest.fixture(scope="session", name="guide_dsn")
async def guide_database(postgres_server) -> str:
    """The guide's variant of the demo database (schema_guide.sql + seed_guide.sql)."""
    name = f"erp_guide_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    dsn = postgres_server.dsn(name)
    await load_demo(dsn, "guide")
    return dsn


@pytest.fixture(params=list(DIALECTS), name="demo_dsn")
def demo_database(request) -> tuple[str, str]:
    """(dialect, DSN) of the demo database, once per dialect; nothing in it may be changed."""
    fixture = "erp_dsn" if request.param == "real" else "guide_dsn"
    return request.param, request.getfixturevalue(fixture)


@pytest.fixture(params=list(DIALECTS), name="demo_copy_of")
async def demo_database_copy(request, fresh_database) -> tuple[str, str]:
    """(dialect, DSN) of a fresh copy of the demo database, once per dialect, for tests that change data."""
    dsn = fresh_database(f"demo_{request.param}")
    await load_demo(dsn, request.param)
    return request.param, dsn
