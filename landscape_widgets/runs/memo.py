"""Results of this package's costly analyses kept on disk, for pages that must draw
their first picture without computing it.

:func:`cached_call` finds a result again only for the same function, the same
arguments and the same source code of this package: the key is a hash of
:func:`~landscape_widgets.runs.store.describe` of the function and its arguments
(tensors and modules by their contents) and of :func:`code_digest`. Results are written
with ``joblib.dump``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .paths import cache_dir


@functools.cache
def code_digest() -> str:
    """A hash of the package's source files."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def write_stamp(path: Path, **data) -> None:
    """Write ``data`` and this package's :func:`code_digest` to ``path`` (JSON, replaced
    whole), for :func:`read_stamp`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**data, "code": code_digest()}))
    tmp.replace(path)


def read_stamp(path: Path) -> dict | None:
    """What :func:`write_stamp` wrote at ``path`` with this package's code; None when
    there is nothing readable there or it was written by other code."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("code") == code_digest() else None


def call_key(fn: Callable, args: tuple, kwargs: dict) -> str:
    """The name of ``fn(*args, **kwargs)`` under this package's code.

    Raises
    ------
    UncacheableError
        If the function or an argument cannot be described faithfully.
    """
    from .store import describe

    spec = {"fn": describe(fn, "function"), "args": describe(list(args), "argument"),
            "kwargs": describe(kwargs, "argument"), "code": code_digest()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_call(fn: Callable, *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)``, from ``<cache_dir>/memo`` when it was called so before
    (see :func:`call_key`), else computed and written there."""
    import joblib

    path = cache_dir() / "memo" / f"{getattr(fn, '__name__', 'call')}-{call_key(fn, args, kwargs)}.joblib"
    if path.exists():
        return joblib.load(path)
    result = fn(*args, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    joblib.dump(result, tmp)
    os.replace(tmp, path)  # readers see the whole file or none
    return result
