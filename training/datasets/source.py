"""Locating and caching dataset files: adapters are pure functions of a file's contents.

The benchmark loads each dataset many times (seeds x models); parsing and record building are
cached per (path, size, mtime), and only the seed-dependent split is redone per call.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FileKey", "file_key"]

FileKey = tuple[str, int, int]  # (resolved path, size in bytes, mtime in ns)


def file_key(path: Path) -> FileKey:
    """A cache key that changes when the file does; raises FileNotFoundError naming the path."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"dataset file not found: {resolved}")
    stat = resolved.stat()
    return str(resolved), stat.st_size, stat.st_mtime_ns
