"""A real redis-server for the Redis cache tests, on a unix socket in a temporary directory."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "aureus_redis", reason="the redis cache is not installed: pip install -e contrib/aureus-redis"
)
pytest.importorskip(
    "redis", reason="the redis cache needs redis-py: pip install -e contrib/aureus-redis"
)
if shutil.which("redis-server") is None:
    pytest.skip(
        "redis-server is not installed (apt-get install redis-server)", allow_module_level=True
    )

from aureus_redis.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.start(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's server, running and empty at the start of each test."""
    redis_server.restart()
    redis_server.client().flushall()
    yield redis_server
    redis_server.restart()


@pytest.fixture(scope="session")
def sealing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sealing") / "key"
    path.write_text(base64.b64encode(os.urandom(32)).decode())
    path.chmod(0o600)
    return path


@pytest.fixture
def redis_options(server: RedisServer, sealing_key_file: Path) -> dict[str, Any]:
    return {
        "url": server.url,
        "sealing_key_file": str(sealing_key_file),
        "timeout": 0.25,
        "pause": 0.2,
    }


@pytest.fixture(autouse=True)
def _fresh_split_memo() -> Iterator[None]:
    """Empty the data-key cache's URI-split memo around each test (as tests/core/test_cache.py)."""
    from aureus_core import cache as module

    module._split.cache_clear()
    yield
    module._split.cache_clear()
