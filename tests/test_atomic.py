import os

import pytest

from mer_keras import atomic


def test_atomic_write_replaces_whole_file_and_keeps_old_on_failure(tmp_path):
    p = tmp_path / "results.json"
    atomic.write_json(p, {"uf1": 0.5})
    assert p.read_text().strip().startswith("{") and oct(p.stat().st_mode & 0o777) != oct(0o600)
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(p) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("killed mid-write")
    assert '"uf1": 0.5' in p.read_text()  # the old complete file survives
    assert [f.name for f in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    import pytest

    from mer_keras.atomic import atomic_dir

    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.pb").write_text("half")
            raise RuntimeError("killed mid-export")
    assert sorted(p.name for p in target.iterdir()) == ["old.pb"]
    with atomic_dir(target) as tmp:
        (tmp / "new.pb").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.pb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]  # no temporary folder left behind
