"""Atomic file writes: a crash at any moment leaves the previous file intact."""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, List, Union

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (no-op where directories can't be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temps(directory: PathLike) -> List[str]:
    """Delete temporary files that a killed :func:`atomic_open` left in ``directory``."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.name)
    return removed


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as pretty JSON."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=_to_builtin)
        handle.write("\n")


def append_jsonl(path: PathLike, record: dict) -> None:
    """Append one JSON record as a line; rewrites the file atomically."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    line = json.dumps(record, sort_keys=True, default=_to_builtin)
    with atomic_open(path, "w") as handle:
        handle.write(old + line + "\n")


def read_jsonl(path: PathLike) -> list:
    """Read every record of a JSON-lines file (empty list if absent)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _to_builtin(obj: Any) -> Any:
    """JSON fallback for numpy / torch scalars and paths."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
