"""PostgreSQL registry: not available yet."""
from __future__ import annotations

from ..errors import RegistryError


class PostgresRegistry:
    def __init__(self, url: str) -> None:
        raise RegistryError("PostgreSQL registry: not available yet")
