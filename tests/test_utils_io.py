"""Atomic writes leave either the old or the new file, never a partial one."""
import json
import os

import pytest

from dualref.utils.io import append_jsonl, atomic_open, read_jsonl, write_json


def test_write_json_round_trip_and_numpy_scalars(tmp_path):
    import numpy as np

    path = tmp_path / "sub" / "r.json"
    write_json(path, {"mAP": np.float32(0.5), "ids": np.arange(3)})
    assert json.loads(path.read_text()) == {"mAP": 0.5, "ids": [0, 1, 2]}


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.bin"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["ckpt.bin"]


def test_append_jsonl_accumulates_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"epoch": 0})
    append_jsonl(path, {"epoch": 1, "mAP": 0.25})
    assert read_jsonl(path) == [{"epoch": 0}, {"epoch": 1, "mAP": 0.25}]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_stale_temporary_files_are_removed(tmp_path):
    from dualref.utils.io import remove_stale_temps

    (tmp_path / ".checkpoint.pth.tar.abc123.tmp").write_bytes(b"half")
    (tmp_path / "checkpoint.pth.tar").write_bytes(b"good")
    assert remove_stale_temps(tmp_path) == [".checkpoint.pth.tar.abc123.tmp"]
    assert os.listdir(tmp_path) == ["checkpoint.pth.tar"]


def test_atomic_files_get_the_umask_permissions_of_the_moment(tmp_path):
    import os
    import stat

    from dualref.utils.io import atomic_open
    old = os.umask(0o027)  # set after import: the umask is read at write time
    try:
        with atomic_open(tmp_path / "a.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640
