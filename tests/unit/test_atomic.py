
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


#: File writes that do not go through mer_keras.atomic, each with why it is safe.
NOT_THROUGH_ATOMIC = {
    ("mer_keras/data/synthetic/dataset.py", "cv2.imwrite("): "frames rendered inside a temporary folder renamed whole",
    ("edge/run.py", "cv2.VideoWriter("): "annotated video written to a .partial file renamed when complete",
    ("mer_keras/models/io.py", 'open(weights, "wb")'): "scratch copy of an archive's weights in a temporary folder, "
                                                      "read back and removed by load_model",
    ("mer_keras/runs.py", 'os.fdopen(fd, "w")'): "the run folder's lock: created with O_EXCL so that two processes "
                                                "cannot both take it, which a rename cannot give",
}


def test_every_file_write_goes_through_atomic():
    """Scan the package and the edge runner for write calls: each writes a ``tmp`` path handed out
    by ``mer_keras.atomic`` (``with atomic_path(...) as tmp``), or is listed with its reason."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    writes = re.compile(r"(\.savefig\(|\.to_csv\(|np\.save\(|np\.savez\(|\.save\(|cv2\.imwrite\(|cv2\.VideoWriter\(|"
                        r"\.write_text\(|\.write_bytes\(|open\([^)]*['\"][wa]b?['\"])")
    offenders = []
    for path in [*(root / "mer_keras").rglob("*.py"), *(root / "edge").rglob("*.py")]:
        rel = path.relative_to(root).as_posix()
        if rel == "mer_keras/atomic.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = writes.search(line)
            if not m or line.lstrip().startswith("#"):
                continue
            if "atomic." in line or re.search(r"\((str\()?tmp\b", line):
                continue  # atomic.write_*, or a path inside the temporary file/folder of an atomic block
            if any(rel == f and key in line for f, key in NOT_THROUGH_ATOMIC):
                continue
            offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "writes outside mer_keras.atomic:\n" + "\n".join(offenders)
