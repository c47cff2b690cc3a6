"""Faults a sweep survives: Ctrl-C, SIGTERM, SIGKILL of the driver or of a worker, bad
records, a full disk (a file-size limit), and a second sweep on the same folder."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sweep_helpers
from sweep_helpers import SleepConfig

from hmmtune.experiments import run_sweep, store

TINY1 = dict(length=24, num_train=150, num_val=50, num_test=100, max_iter=60)

# `hmmtune reproduce exp1` on tiny configurations (the CLI itself, in a subprocess)
CLI = textwrap.dedent(
    f"""
    import sys
    from hmmtune.experiments import exp1
    _configs = exp1.configs
    exp1.configs = lambda quick=False, truncate=False: _configs(states=(4, 15), **{TINY1!r})
    from hmmtune.cli import main
    sys.exit(main(["reproduce", "exp1", "--no-progress", *sys.argv[1:]]))
    """
)


def _records(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _start(out: Path, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for_a_record(proc, folder: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not _records(folder):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no record appeared"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "sig, jobs, code",
    [(signal.SIGINT, 2, 130), (signal.SIGINT, 1, 130), (signal.SIGTERM, 2, 143)],
    ids=["ctrl-c-jobs2", "ctrl-c-jobs1", "sigterm-jobs2"],
)
def test_interrupt_stops_at_once_and_says_what_is_saved(tmp_path, sig, jobs, code):
    out = tmp_path / "res"
    # Ctrl-C in a terminal signals the whole process group: the workers too
    proc = _start(out, "--seeds", "15", "--jobs", str(jobs), start_new_session=True)
    try:
        _wait_for_a_record(proc, out / "exp1")
        workers = _children(proc.pid)
        t0 = time.time()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        stopped = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    saved = len(_records(out / "exp1"))
    assert f"interrupted: {saved} of 30 runs are saved in {out / 'exp1'}" in err
    assert saved < 30
    assert stopped < 5.0, f"took {stopped:.1f} s to stop"  # about a second when the machine is idle
    deadline = time.time() + 5
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "a worker outlived the sweep"
    assert not list((out / "exp1").glob("*.tmp"))


def test_sigkill_of_the_driver_leaves_no_worker_running_and_the_sweep_resumes(tmp_path):
    out = tmp_path / "res"
    proc = _start(out, "--seeds", "15", "--jobs", "2")
    try:
        _wait_for_a_record(proc, out / "exp1")
        workers = _children(proc.pid)
        assert workers
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 5
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "orphaned workers still running"
    kept = {p.name: p.stat().st_mtime_ns for p in _records(out / "exp1")}
    time.sleep(1.0)
    assert {p.name: p.stat().st_mtime_ns for p in _records(out / "exp1")} == kept  # nobody writes any more
    # the folder's lock died with the driver, and what it saved is valid (the resume itself:
    # test_experiments_sweep.py::test_resume_after_a_killed_sweep_gives_the_uninterrupted_table)
    with store.folder_lock(out / "exp1"):
        for path in _records(out / "exp1"):
            store.validate_record(store.read_record(path), path)


def test_a_killed_worker_is_replaced_and_its_run_retried(tmp_path):
    marker = tmp_path / "killed-once"
    configs = [SleepConfig(1, kill_marker=str(marker)), SleepConfig(2)]
    res = run_sweep(sweep_helpers.RECIPE, configs=configs, seeds=2, out=tmp_path / "res", jobs=2, plot=False)
    assert marker.exists()  # the first attempt of x1 killed its worker
    assert res.retries == 1 and res.ran == 4
    assert [r["results"]["a"]["test"] for r in res.records] == [0.7, 0.8, 0.4, 0.5]


def test_a_run_that_always_kills_its_worker_is_given_up(tmp_path):
    configs = [SleepConfig(1, kill_marker="always"), SleepConfig(2)]
    with pytest.raises(RuntimeError, match="x1-seed0-.*died 1 times"):
        run_sweep(sweep_helpers.RECIPE, configs=configs, seeds=1, out=tmp_path / "res", jobs=2, retries=0, plot=False)


def test_bad_records_are_named_set_aside_and_recomputed(tmp_path):
    out = tmp_path / "res"
    configs = [SleepConfig(1), SleepConfig(2), SleepConfig(3)]
    ref = run_sweep(sweep_helpers.RECIPE, configs=configs, seeds=2, out=out, plot=False)
    paths = [Path(out / "sleepy" / (r["key"] + ".json")) for r in ref.records]
    texts = [p.read_text() for p in paths]

    def edit(i, change):
        rec = json.loads(texts[i])
        change(rec)
        paths[i].write_text(json.dumps(rec))

    paths[0].write_text(texts[0][: len(texts[0]) // 2])  # truncated
    edit(1, lambda r: r.update(results={}))  # valid JSON, wrong inside
    edit(2, lambda r: r.pop("seed"))  # a missing field
    edit(3, lambda r: r["results"]["a"].update(test="0.9"))  # a string accuracy
    edit(4, lambda r: r["results"]["a"].update(test=1.5))  # out of range
    bad = {p.name: p.read_text() for p in paths[:5]}

    again = run_sweep(sweep_helpers.RECIPE, configs=configs, seeds=2, out=out, plot=False)
    assert again.ran == 5 and again.resumed == 1 and len(again.set_aside) == 5
    assert [r["results"] for r in again.records] == [r["results"] for r in ref.records]
    for moved in map(Path, again.set_aside):  # renamed, never deleted, contents kept
        assert moved.name.split(".json.bad-")[0] + ".json" in bad
        assert moved.read_text() == bad[moved.name.split(".bad-")[0]]
    assert "set aside" in again.cost_line()


def test_record_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "x1-seed0-abc.json"
    path.write_text(json.dumps({"experiment": "e", "key": "x1-seed0-abc", "config": {}, "config_hash": "no"}))
    with pytest.raises(store.RecordError, match=r"x1-seed0-abc.json: field 'results' is missing"):
        store.validate_record(store.read_record(path), path)
    path.write_text("[1]")
    with pytest.raises(store.RecordError, match="x1-seed0-abc.json: expected a JSON object"):
        store.read_record(path)
    path.unlink()
    path.symlink_to("/dev/zero")  # never read: it would not end
    with pytest.raises(store.RecordError, match="not a regular file"):
        store.read_record(path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # never opened: it would block
    with pytest.raises(store.RecordError, match="not a regular file"):
        store.read_record(fifo)


def test_a_full_disk_exits_2_naming_the_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "res"

    def limit():  # records are ~2 kB: a 1 kB file-size limit makes every write fail
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    proc = subprocess.run(
        [sys.executable, "-c", CLI, "--out", str(out), "--seeds", "1"],
        capture_output=True, text=True, preexec_fn=limit, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "File too large" in proc.stderr and str(out / "exp1") in proc.stderr
    assert [p.name for p in (out / "exp1").iterdir() if p.name != ".lock"] == []


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    with store.folder_lock(tmp_path / "sleepy"):
        with pytest.raises(store.SweepBusyError, match=f"pid {os.getpid()}"):
            run_sweep(sweep_helpers.RECIPE, seeds=1, out=tmp_path, plot=False)
    assert run_sweep(sweep_helpers.RECIPE, seeds=1, out=tmp_path, plot=False).ran == 2  # released
