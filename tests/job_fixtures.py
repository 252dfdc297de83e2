"""Jobs only the tests enqueue (importable by the real worker subprocess)."""
from __future__ import annotations


def always_fails(reason: str) -> None:
    raise RuntimeError(f"故意失败：{reason}")
