"""The results store writes records atomically and reads only complete ones."""

from __future__ import annotations

import json
import os

import pytest

from hmmtune.experiments import store


def test_save_and_load_a_record(tmp_path):
    path = tmp_path / "exp1" / "m4-seed0-abc.json"
    rec = {"results": {"head": {"test": 0.9}}, "seed": 0}
    store.save_record(path, rec)
    assert store.load_record(path) == rec
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_a_failed_write_leaves_the_old_record_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    store.save_record(path, {"results": {"v": 1}})

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(KeyboardInterrupt):
        store.save_record(path, {"results": {"v": 2}})
    monkeypatch.undo()
    assert store.load_record(path) == {"results": {"v": 1}}
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_partial_or_foreign_files_read_as_missing(tmp_path):
    (tmp_path / "half.json").write_text('{"results": {"head": ')
    (tmp_path / "other.json").write_text("[1, 2]")
    assert store.load_record(tmp_path / "half.json") is None
    assert store.load_record(tmp_path / "other.json") is None
    assert store.load_record(tmp_path / "missing.json") is None


def test_config_hash_is_stable_and_order_free():
    a = store.config_hash({"m": 4, "length": 128})
    assert a == store.config_hash({"length": 128, "m": 4})
    assert a != store.config_hash({"m": 4, "length": 64})
    assert store.run_key("m4", 3, {"m": 4}).startswith("m4-seed3-")


def test_environment_names_versions_and_revision():
    env = store.environment()
    assert {"python", "torch", "numpy", "hmmtune"} <= set(env["versions"])
    assert "git" in env
    rev = env["git"]
    assert rev is None or len(rev.split("+")[0]) == 40
