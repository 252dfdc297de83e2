"""Jobs only the tests enqueue (importable by the real worker subprocess)."""
from __future__ import annotations


def always_fails(reason: str) -> None:
    raise RuntimeError(f"故意失败：{reason}")


def fails_once(memory: str) -> str:
    """Fails on its first run and succeeds on the next; the file at `memory` remembers."""
    from pathlib import Path

    path = Path(memory)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("故意失败一次")
    return "second run"


def hangs_once(memory: str) -> str:
    """Hangs on its first run (until its worker is killed) and returns at once on the next;
    the file at `memory` remembers, and says the first run has started."""
    import time
    from pathlib import Path

    path = Path(memory)
    if not path.exists():
        path.write_text("started")
        time.sleep(300)
    return "second run"
