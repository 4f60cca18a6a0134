"""Result files are written atomically: a crash mid-write (an exception, or the writer process
killed) leaves either the old file or none, never a half-written one a rerun would take as complete."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aibench.files import atomic_open, write_json
from aibench.results.schema import PointResult, summary_document, write_point


def test_exception_mid_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json(target, {"complete": True})
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write('{"complete": fal')
        raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"complete": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_writer_killed_mid_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "raw.csv"
    code = (
        "import sys, time\n"
        "from aibench.files import atomic_open\n"
        f"with atomic_open({str(target)!r}) as h:\n"
        "    h.write('a,b\\n' * 1000); h.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not target.exists()  # only the hidden temporary, never the final name
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".raw.csv.") and name.endswith(".tmp") for name in leftovers)


def test_point_summary_written_after_its_raw_records(tmp_path: Path) -> None:
    result = PointResult(metrics=[], raw_csv=b"x\n1\n")
    summary = summary_document(experiment="e", point="p", repeat=0, params={}, swept={}, service={},
                               client={"kind": "k"}, window={"start": 0, "end": 1, "duration_s": 1},
                               result=result)  # fmt: skip
    write_point(tmp_path, summary, result.raw_csv)
    raw, done = (tmp_path / "raw.csv.gz").stat(), (tmp_path / "summary.json").stat()
    assert raw.st_mtime_ns <= done.st_mtime_ns  # summary.json marks completion: written last
