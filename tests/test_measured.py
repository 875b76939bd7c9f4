"""Committed measured results: written by one command, checked against their configuration,
read back by the book as measured (never as reported)."""
import json
import re

import pytest

from haan_core import measured as M
from haan_core.config import HAANConfig
from haan_core.errors import HAANInputError
from haan_core.tables import compare


@pytest.fixture
def tiny_measurement(monkeypatch):
    m = M.Measurement("synthetic", "HAAN-GCM", {"epochs": 2, "seed": 1,
                                                "embed_dim": 32, "word_dim": 16,
                                                "extra": {"n_train": 100, "n_val": 40, "n_test": 40}},
                      ("synthetic data, for this test only",), "HAAN-GCM (test)")
    monkeypatch.setitem(M.MEASUREMENTS, "tiny", m)
    return m


def test_measure_writes_a_record_that_loads_back(tiny_measurement, tmp_path):
    rec = M.measure("tiny", root=tmp_path, results_dir=tmp_path, device="cpu", progress=False)
    on_disk = json.loads((tmp_path / "tiny.json").read_text())
    assert on_disk["avg"] == rec["avg"] and on_disk["source"] == "measured"
    assert on_disk["regenerate"] == "python -m haan_core measure tiny --root DIR"
    assert len(on_disk["val_history"]) == 2 and "loss_history" not in on_disk
    assert on_disk["provenance"]["config"]["seed"] == 1
    (rows,) = [M.load_measured("synthetic", results_dir=tmp_path)]
    assert M.measured_rows(rows).loc["HAAN-GCM", "avg"] == pytest.approx(rec["avg"])
    assert M.load_measured("corel5k", results_dir=tmp_path) == []


def test_record_refuses_a_result_of_another_configuration(tiny_measurement):
    cfg = tiny_measurement.config(rho=0.3).to_dict()
    result = {"i2t": .5, "t2i": .5, "avg": .5, "best_epoch": 0, "train_seconds": 1.0,
              "device": "cpu", "test_by_module": {}, "val_history": [],
              "provenance": {"config": cfg}}
    with pytest.raises(HAANInputError, match="rho"):
        M.record("tiny", result)
    result["provenance"]["config"] = tiny_measurement.config(root="/x/y").to_dict()
    rec = M.record("tiny", result)
    assert rec["avg"] == .5                            # where the data lay does not matter
    assert "/x/y" not in json.dumps(rec)               # and is not committed
    # a configuration that lacks a field the measurement sets was made by other code
    del result["provenance"]["config"]["val_test_split"]
    with pytest.raises(HAANInputError, match=r"lacks field\(s\) \['val_test_split'\]"):
        M.record("tiny", result)


def test_unknown_measurement_and_foreign_files(tmp_path):
    with pytest.raises(HAANInputError, match="known"):
        M.measure("nope", root=tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"avg": 1}))
    with pytest.raises(HAANInputError, match="not a measured result"):
        M.load_measured(results_dir=tmp_path)


@pytest.mark.parametrize("rec", M.load_measured(), ids=lambda r: r["name"])
def test_committed_results_match_their_registry_and_are_labelled(rec):
    """Every file in data/measured was trained with its registered configuration, carries
    its provenance, and lines up with the paper's row for the same method."""
    m = M.MEASUREMENTS[rec["name"]]
    M.record(rec["name"], {**rec, "best_epoch": rec["best_epoch"] - 1})  # raises if not
    p = rec["provenance"]
    assert p["commit"] and p["time_utc"] and p["seed"] == m.overrides["seed"]
    assert not re.search(r"(/work/|/home/|/tmp/|/Users/|[A-Z]:\\)", json.dumps(rec))
    if p["data"].get("synthetic") is False:            # real data is named by its files
        assert p["data"]["files_sha256"]
        shared = p["data"]["split_classes"]["val_and_test_share"]
        if m.control_of is None:   # a table row validates on the classes it tests on
            assert shared == min(p["data"]["split_classes"]["val"],
                                 p["data"]["split_classes"]["test"])
        else:
            assert shared == 0 and p["config"]["val_test_split"] == "order"
    assert 0 <= rec["i2t"] <= 1 and 0 <= rec["t2i"] <= 1
    assert rec["avg"] == pytest.approx((rec["i2t"] + rec["t2i"]) / 2)
    assert len(rec["val_history"]) == HAANConfig.for_dataset(m.dataset).epochs
    table = compare(M.measured_rows([rec]), rec["dataset"])
    assert table.loc[rec["variant"], ("AVG", "reported")] > 0   # the paper has this row


def test_provenance_names_the_commit_the_run_started_from(tiny_measurement, monkeypatch):
    """A commit made while a long run trains did not run: the commit is read at the start."""
    from haan_core import train as T
    calls = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(T, "git_commit", lambda: next(calls))
    result = T.train(tiny_measurement.config(device="cpu", progress=False, epochs=1))
    assert result.provenance["commit"] == "a" * 40 and result.provenance["dirty"] is False


@pytest.mark.parametrize("rec", M.load_measured(), ids=lambda r: r["name"])
def test_provenance_rows_name_the_image_features_that_ran(rec):
    row = M.provenance_rows([rec]).iloc[0]
    if rec["provenance"]["data"]["has_patches"]:
        assert row["image features"].startswith(rec["provenance"]["config"]["backbone"])
    else:
        assert "given features" in row["image features"]


def test_a_copy_without_git_takes_its_commit_from_the_environment(monkeypatch, tmp_path):
    """A working tree sent to another machine without .git names its commit in
    $HAAN_GIT_COMMIT; a malformed value is an error, an absent one leaves it unknown."""
    import haan_core.provenance as P
    from haan_core.errors import HAANInputError
    monkeypatch.setattr(P, "PACKAGE_DIR", tmp_path)         # not a git checkout
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("HAAN_GIT_COMMIT", raising=False)
    assert P.git_commit() == {"commit": None, "dirty": None}
    monkeypatch.setenv("HAAN_GIT_COMMIT", "c" * 40)
    assert P.git_commit() == {"commit": "c" * 40, "dirty": None, "commit_source": "environment"}
    monkeypatch.setenv("HAAN_GIT_COMMIT", "HEAD")
    with pytest.raises(HAANInputError, match="40-hex-digit"):
        P.git_commit()
