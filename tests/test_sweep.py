"""The sweep: declared grids, one atomic pair of files per finished run, resume, executors,
and the committed Corel 5K runs read back (their matrices give their own scores)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from haan_core import sweep as S
from haan_core.config import VARIANTS
from haan_core.errors import HAANInputError
from haan_core.metrics import retrieval_scores
from haan_core.models import fuse

TINY = (("epochs", 1), ("embed_dim", 16), ("word_dim", 8),
        ("extra", {"n_train": 80, "n_val": 20, "n_test": 24}))


def tiny_grid(seeds=(0, 1)):
    return S.Grid("tiny", "synthetic", "a test grid",
                  (("HAAN", ()), ("HAAN-GCM", (("rho", 0.4),))), base=TINY, seeds=seeds)


def test_the_declared_grids_are_the_papers():
    t6 = S.GRIDS["table6"].specs()
    assert [s.variant for s in t6[:7]] == list(VARIANTS) and len(t6) == 21
    assert {s.seed for s in t6} == {0, 1, 2}
    f6 = S.GRIDS["figure6"].specs()
    assert sorted({dict(s.overrides).get("rho", 0.6) for s in f6}) == [0.2, 0.4, 0.6, 0.8, 1.0]
    # rho = 0.6 is the recipe's: Figure 6's middle point is Table 6's HAAN run, not a copy
    assert {s.name for s in f6} & {s.name for s in t6} == {"HAAN-seed0", "HAAN-seed1",
                                                          "HAAN-seed2"}
    both = S.grid_named("table6,figure6").specs()
    assert len(both) == len({s.name for s in both}) == 33
    for s in t6 + f6:
        cfg = s.config()
        assert (cfg.backbone, cfg.patch_mode, cfg.epochs, cfg.batch_size) == \
            ("efficientnet_lite0", "crops", 100, 100)
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", s.name)      # a plain file name
    with pytest.raises(HAANInputError, match="known"):
        S.grid_named("table7")
    # bf16 is HAAN's recipe with one field changed: its own run names, the same seeds
    bf = S.GRIDS["precision"].specs()
    assert [s.name for s in bf] == [f"HAAN-precisionbf16-seed{k}" for k in (0, 1, 2)]
    assert all(s.config().precision == "bf16" and s.config().epochs == 100 for s in bf)
    assert S.identity(bf[0].config()) == {**S.identity(t6[6].config()), "precision": "bf16"}


def test_finished_runs_are_written_and_skipped_and_a_code_change_reruns(tmp_path, monkeypatch):
    out = S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    assert len(out) == 4
    files = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert files == sorted(f"{n}.{e}" for n in ("HAAN-seed0", "HAAN-seed1",
                                                  "HAAN-GCM-rho0.4-seed0", "HAAN-GCM-rho0.4-seed1")
                           for e in ("json", "npz"))
    assert S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None) == []
    # a .json is the mark of a whole run: without its .npz the run is done again
    (tmp_path / "synthetic" / "HAAN-seed1.npz").unlink()
    todo, done = S.plan(tiny_grid(), results_dir=tmp_path)
    assert [s.name for s in todo] == ["HAAN-seed1"] and len(done) == 3
    # other training code: every run is to be made again
    monkeypatch.setattr(S, "method_code", lambda read=None, method="haan": "0" * 64)
    assert len(S.plan(tiny_grid(), results_dir=tmp_path)[0]) == 4


def test_a_run_record_holds_what_the_pages_need_and_no_machine_path(tmp_path):
    S.sweep(tiny_grid(seeds=(0,)), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    rec = next(r for r in S.load_runs("synthetic", tmp_path) if r["variant"] == "HAAN")
    assert rec["source"] == "measured" and rec["seed"] == 0
    assert set(rec["machine_load_1min"]) == {"before", "after"}
    from haan_core.provenance import cpu_model
    assert rec["cpu"] == cpu_model()                    # a CPU run names its processor
    assert set(rec["test_by_module"]) == {"C", "F", "fused"}
    assert len(rec["val_history"]) == 1
    obj = rec["objective"]
    assert len(obj["C"]) == len(obj["F"]) == obj["iterations_per_epoch"] == 1   # 80 / 100
    assert rec["provenance"]["config"]["root"] is None
    assert rec["provenance"]["commit"] is None or len(rec["provenance"]["commit"]) == 40
    m = S.load_matrices(rec, tmp_path)
    assert m["C"].shape == m["F"].shape == (24, 24) and m["C"].dtype == torch.float32
    assert rec["matrices"]["keys"] == ["C", "F"]
    gcm = next(r for r in S.load_runs("synthetic", tmp_path) if r["variant"] == "HAAN-GCM")
    assert gcm["matrices"]["keys"] == ["C"] and set(gcm["objective"]) == {
        "iterations_per_epoch", "C"}


def test_a_failed_run_is_named_the_others_kept_and_the_rerun_does_only_it(tmp_path,
                                                                          monkeypatch):
    import haan_core.train as T
    real = T.train

    def flaky(cfg, *a, **k):
        if cfg.variant == "HAAN-GCM" and cfg.seed == 1:
            raise RuntimeError("out of memory (simulated)")
        return real(cfg, *a, **k)
    monkeypatch.setattr(T, "train", flaky)
    with pytest.raises(HAANInputError, match=r"1 run\(s\) of tiny failed.*HAAN-GCM-rho0.4-seed1"):
        S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    assert not list((tmp_path / "synthetic").glob("*.tmp"))
    monkeypatch.setattr(T, "train", real)
    out = S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    assert [r["name"] for r in out] == ["HAAN-GCM-rho0.4-seed1"]


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Ctrl-C during the third run: the two finished runs are kept whole, nothing is
    half-written, and the same command makes only the two runs left."""
    import haan_core.train as T
    real, started = T.train, []

    def interrupted(cfg, *a, **k):
        started.append((cfg.variant, cfg.seed))
        if len(started) == 3:
            raise KeyboardInterrupt
        return real(cfg, *a, **k)
    monkeypatch.setattr(T, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    kept = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert kept == ["HAAN-GCM-rho0.4-seed0.json", "HAAN-GCM-rho0.4-seed0.npz",
                    "HAAN-seed0.json", "HAAN-seed0.npz"]            # seed 0's two runs
    before = {n: (tmp_path / "synthetic" / n).read_bytes() for n in kept}
    started.clear()
    monkeypatch.setattr(T, "train", lambda cfg, *a, **k: (started.append(
        (cfg.variant, cfg.seed)), real(cfg, *a, **k))[1])
    out = S.sweep(tiny_grid(), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    assert started == [("HAAN", 1), ("HAAN-GCM", 1)]
    assert [r["name"] for r in out] == ["HAAN-seed1", "HAAN-GCM-rho0.4-seed1"]
    assert all((tmp_path / "synthetic" / n).read_bytes() == b for n, b in before.items())


def test_a_run_made_with_another_configuration_is_not_counted_as_done(tmp_path):
    """A committed file with the right name but another configuration (here: 3 epochs
    where the grid says 1) is not mixed in: the sweep plans it again, and only it."""
    S.sweep(tiny_grid(seeds=(0,)), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    js = tmp_path / "synthetic" / "HAAN-seed0.json"
    rec = json.loads(js.read_text())
    assert rec["identity"]["epochs"] == 1
    rec["identity"]["epochs"] = 3
    js.write_text(json.dumps(rec))
    todo, done = S.plan(tiny_grid(seeds=(0,)), results_dir=tmp_path)
    assert [s.name for s in todo] == ["HAAN-seed0"]
    assert [s.name for s in done] == ["HAAN-GCM-rho0.4-seed0"]


def test_worker_processes_and_submitits_local_executor_give_the_same_runs(tmp_path):
    """Two ways to run in parallel; CPU runs under a seed are the same bit for bit."""
    pytest.importorskip("submitit")
    grid = S.Grid("tiny", "synthetic", "", (("HAAN-GCM", ()),), base=TINY, seeds=(0, 1))
    S.sweep(grid, device="cpu", workers=2, results_dir=tmp_path / "a", log=lambda *_: None)
    S.sweep(grid, device="cpu", executor="local", results_dir=tmp_path / "b",
            slurm={"folder": tmp_path / "logs"}, log=lambda *_: None)
    assert list((tmp_path / "logs").glob("*_log.out"))
    for a, b in zip(S.load_runs("synthetic", tmp_path / "a"),
                    S.load_runs("synthetic", tmp_path / "b")):
        assert a["name"] == b["name"] and a["test_by_module"] == b["test_by_module"]
        assert a["concurrent_runs"] == b["concurrent_runs"] == 2


def test_the_methods_grid_runs_each_compared_method_with_its_own_recipe():
    specs = S.GRIDS["methods"].specs()
    assert [s.name for s in specs[:3]] == ["liu-seed0", "shan-seed0", "tshsr-seed0"]
    assert len(specs) == 3 * len(S.COMPARED) and {s.seed for s in specs} == {0, 1, 2}
    assert set(S.COMPARED) == {"liu", "shan", "tshsr", "cca", "kcca", "dcca", "scan", "sgr",
                               "saf", "dscmr"} <= set(S.GRIDS)
    liu = specs[0].config()
    assert (liu.method, liu.backbone, liu.epochs, liu.batch_size, liu.lr) == \
        ("liu", "efficientnet_lite0", 176, 80, 1e-3)   # 10,000 iterations of batch 80
    shan = specs[1].config()
    assert shan.method == "shan" and shan.variant == "HAAN"
    assert [s.name for s in S.grid_named("liu").specs()] == ["liu-seed0", "liu-seed1",
                                                             "liu-seed2"]


def test_a_compared_methods_run_is_kept_apart_from_haans(tmp_path):
    grid = S.Grid("tiny", "synthetic", "", (("HAAN", ()), ("HAAN", (("method", "liu"),))),
                  base=TINY, seeds=(0,))
    S.sweep(grid, device="cpu", results_dir=tmp_path, log=lambda *_: None)
    assert [r["name"] for r in S.load_runs("synthetic", tmp_path)] == ["HAAN-seed0"]
    liu = S.load_runs("synthetic", tmp_path, method="liu")
    assert [r["name"] for r in liu] == ["liu-seed0"] and liu[0]["method"] == "liu"
    assert liu[0]["code"] == S.method_code(method="liu") != S.method_code()
    assert liu[0]["matrices"]["keys"] == ["S"]
    assert len(liu[0]["objective"]["S"]) == liu[0]["objective"]["iterations_per_epoch"]
    both = S.load_runs("synthetic", tmp_path, method=None)
    assert list(S.over_seeds(both).index) == ["HAAN", "liu"]
    assert S.select(both, "HAAN") == S.load_runs("synthetic", tmp_path)   # HAAN's only
    assert not S.plan(grid, results_dir=tmp_path)[0]


def test_a_methods_code_hash_sees_its_own_modules_and_no_others():
    from haan_core.provenance import PACKAGE_DIR

    def edited(module):
        return lambda name: (PACKAGE_DIR / name).read_bytes() + \
            (b"\n# x" if name == module else b"")
    liu = S.method_code(method="liu")
    assert S.method_code(edited("methods/liu.py"), method="liu") != liu
    assert S.method_code(edited("train.py"), method="liu") != liu     # the shared loop
    assert S.method_code(edited("methods/shan.py"), method="liu") == liu
    assert S.method_code(edited("methods/cca.py"), method="kcca") != \
        S.method_code(method="kcca")
    assert S.method_code(edited("methods/liu.py")) == S.method_code()  # HAAN's: unchanged
    assert S.method_code(edited("methods/ranking.py"), method="tshsr") != \
        S.method_code(method="tshsr")
    for method, own in (("dcca", "methods/dcca.py"), ("dscmr", "methods/dscmr.py"),
                        ("scan", "methods/scan.py"), ("scan", "methods/shan.py"),
                        ("sgr", "methods/sgraf.py"), ("saf", "methods/sgraf.py")):
        assert S.method_code(edited(own), method=method) != S.method_code(method=method)
    assert S.method_code(edited("methods/dcca.py"), method="liu") == liu
    with pytest.raises(HAANInputError, match="METHOD_MODULES"):
        S.method_code(method="nope")


_IMPORTED = """
import json, sys
from haan_core import HAANConfig
from haan_core.train import train
cfg = HAANConfig.for_dataset("synthetic", method=sys.argv[1], epochs=1, embed_dim=16,
                             word_dim=8, batch_size=50, progress=False,
                             extra={"n_train": 100, "n_val": 50, "n_test": 50})
train(cfg)
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.startswith("haan_core") and getattr(m, "__file__", None))))
"""


@pytest.mark.parametrize("method", ("haan",) + S.COMPARED)
def test_training_a_method_imports_only_the_modules_its_code_hash_reads(method):
    """The run cache, the kept book runs and the committed runs trust ``method_code``: a
    module that training imports and the hash does not read could change numbers unseen."""
    from haan_core.provenance import PACKAGE_DIR
    proc = subprocess.run([sys.executable, "-c", _IMPORTED, method], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    imported = {str(Path(f).relative_to(PACKAGE_DIR)) for f in json.loads(
        proc.stdout.strip().splitlines()[-1])}
    hashed = set(S.HAAN_MODULES + S.METHOD_MODULES.get(method, ()) + S.NOT_NUMERIC_MODULES)
    assert imported - hashed == set(), f"{method} imports modules its code hash skips"
    assert "train.py" in imported


def test_cli_lists_a_grid_and_refuses_a_run_without_data():
    run = lambda *a: subprocess.run([sys.executable, "-m", "haan_core", "sweep", *a],
                                    capture_output=True, text=True)
    listed = run("table6", "--list")
    assert listed.returncode == 0 and "HAAN-GCM-LCM-AWL_Stage1-seed2" in listed.stdout
    no_root = run("table6")
    assert no_root.returncode == 2 and "--root is needed" in no_root.stderr
    bad = run("table6", "--seeds", "0,x", "--list")
    assert bad.returncode == 2 and "comma-separated integers" in bad.stderr


def test_a_matrix_is_kept_in_float16_only_where_that_keeps_its_test_map(tmp_path):
    """Scores spread over [-1, 1] are kept in float16; scores squeezed into a narrow range
    (SAF's sigmoids on Corel 5K lie in 0.77-0.81), whose float16 copy ties and ranks
    differently, are kept in float32, as computed; both read back as float32 and the
    record names what was stored."""
    import numpy as np
    import torch
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 6
    signal = (labels[:, None] == labels[None, :]).float()
    wide = (signal + 2 * torch.rand(60, 60, generator=g)) / 3 * 2 - 1      # in [-1, 1]
    narrow = 0.79 + 1e-4 * (signal + 3 * torch.rand(60, 60, generator=g))  # 0.79-0.7904
    assert S.storage_dtype(wide, labels, labels) == "float16"
    assert S.storage_dtype(narrow, labels, labels) == "float32"
    half = retrieval_scores(narrow.half().float(), labels, labels)["avg"]
    assert abs(half - retrieval_scores(narrow, labels, labels)["avg"]) > S.FLOAT16_MAP_TOLERANCE
    ev = {"sims": {"C": wide, "S": narrow, "fused": None}, "img_labels": labels,
          "txt_labels": labels}
    npz = S.write_matrices(tmp_path / "m.npz", ev)
    with np.load(npz) as z:
        assert (z["C"].dtype, z["S"].dtype) == (np.float16, np.float32)
    back = S.read_matrices(npz)
    assert torch.equal(back["S"], narrow) and torch.equal(back["C"], wide.half().float())
    assert back["img_labels"].dtype == torch.int64
    assert S._stored_dtypes(npz) == {"C": "float16", "S": "float32"}


COMMITTED = S.load_runs("corel5k", method=None)   # HAAN and the compared methods


@pytest.mark.parametrize("rec", COMMITTED, ids=lambda r: r["name"])
def test_committed_runs_are_what_their_names_say_and_their_matrices_give_their_scores(rec):
    spec = next(s for g in S.GRIDS.values() for s in g.specs(seeds=[rec["seed"]])
                if s.name == rec["name"])
    from haan_core.measured import ADDED_FIELDS
    assert {**ADDED_FIELDS, **rec["identity"]} == S.identity(spec.config())
    # made by this code (or code shown to compute the same numbers): a sweep skips it and
    # the pages may put it beside the others; a change to the training code fails here
    # until the runs are made again or the change is shown bit for bit to change nothing
    assert S.is_done(spec, S.method_code(method=spec.method)), \
        f"{rec['name']} was made by other training code (code {rec.get('code')})"
    m = S.load_matrices(rec)
    cfg = spec.config()
    if spec.method == "haan":
        sims = {k: m.get(k) for k in ("C", "F")}
        sims["fused"] = fuse(sims["C"], sims["F"], cfg.upsilon1, cfg.upsilon2)   # eq. 7
    else:   # one network: its matrix is the tested one
        sims = {"S": m["S"], "fused": m["S"]}
    for key, s in sims.items():
        if s is None:
            continue
        got = retrieval_scores(s, m["img_labels"], m["txt_labels"])
        # float16 storage: a rank can swap where two similarities round together
        assert got["avg"] == pytest.approx(rec["test_by_module"][key]["avg"], abs=2e-3)
    text = json.dumps(rec)
    assert not re.search(r"(/work/|/home/|/tmp/|/root/|\.gpu)", text)
    key = "S" if "S" in sims else ("C" if sims["C"] is not None else "F")
    assert rec["provenance"]["commit"]
    from haan_core.methods import CLOSED_FORM
    if spec.method in CLOSED_FORM:   # fitted in closed form: no objective per iteration
        assert key not in rec["objective"]
    else:
        assert len(rec["objective"][key]) == rec["objective"]["iterations_per_epoch"] * cfg.epochs


def _rec(variant, seed, avg, **overrides):
    return {"variant": variant, "seed": seed, "i2t": avg + 0.01, "t2i": avg - 0.01,
            "avg": avg, "overrides": overrides}


def test_over_seeds_is_mean_and_sample_sd_per_variant_computed_by_hand():
    recs = [_rec("HAAN", 0, 0.5), _rec("HAAN", 1, 0.6), _rec("HAAN", 2, 0.7),
            _rec("HAAN-GCM", 0, 0.3), _rec("HAAN", 0, 0.9, rho=0.2)]
    recipe = S.select(recs)
    assert len(recipe) == 4 and S.select(recs, "HAAN", rho=0.2)[0]["avg"] == 0.9
    t = S.over_seeds(recipe, order=["HAAN-GCM", "HAAN", "HAAN-LCM"])
    assert list(t.index) == ["HAAN-GCM", "HAAN"]
    assert t.loc["HAAN", ("mean", "avg")] == pytest.approx(0.6)
    assert t.loc["HAAN", ("sd", "avg")] == pytest.approx(0.1)        # n - 1 in the divisor
    assert t.loc["HAAN", ("n", "")] == 3 and t.loc["HAAN", ("seeds", "")] == "0,1,2"
    assert t.loc["HAAN-GCM", ("sd", "avg")] != t.loc["HAAN-GCM", ("sd", "avg")]   # NaN, n=1


def test_precision_pairs_put_each_seeds_bf16_run_beside_its_fp32_run():
    from haan_core.tables import precision_pairs
    recs = [_rec("HAAN", 0, 0.58), _rec("HAAN", 1, 0.57), _rec("HAAN", 3, 0.50),
            _rec("HAAN", 0, 0.5807, precision="bf16"), _rec("HAAN", 1, 0.5650, precision="bf16"),
            _rec("HAAN", 2, 0.59, precision="bf16"),             # no fp32 run: left out
            _rec("HAAN", 0, 0.40, rho=0.2), _rec("HAAN-GCM", 0, 0.30, precision="bf16"),
            {**_rec("HAAN", 1, 0.10), "method": "saf"}]            # not HAAN's recipe run
    for i, r in enumerate(recs):
        r.update(train_seconds=1000.0 + i, device="cpu (x86_64, 2 cores)", cpu="AMD EPYC")
    t = precision_pairs(recs)
    assert list(t.index) == [0, 1]
    assert t.loc[0, "bf16 - fp32"] == pytest.approx(0.0007)
    assert t.loc[1, "bf16 - fp32"] == pytest.approx(-0.005)
    assert (t.loc[1, "fp32 AVG"], t.loc[1, "bf16 train s"]) == (0.57, 1004)
    assert t.loc[0, "bf16 device"] == "cpu (x86_64, 2 cores), AMD EPYC"
    assert precision_pairs(recs[:3]).empty


@pytest.mark.parametrize("diffs,verdict", [
    ((0.01, 0.02, 0.03), "supported"), ((-0.01, -0.02, -0.03), "contradicted"),
    ((0.01, -0.02, 0.03), "not settled"), ((0.01, 0.02), "no verdict")])
def test_a_claim_gets_a_verdict_only_from_three_paired_seeds_of_one_sign(diffs, verdict):
    recs = [r for s, d in enumerate(diffs)
            for r in (_rec("A", s, 0.5 + d), _rec("B", s, 0.5))] + [_rec("B", 9, 0.1)]
    v = S.claim_verdict(recs, "A", "B")
    assert v["verdict"].startswith(verdict)
    assert v["seeds"] == list(range(len(diffs)))        # seed 9 of B alone is not paired
    assert v["mean_difference"] == pytest.approx(sum(diffs) / len(diffs))


def test_the_comparison_table_puts_reported_and_measured_in_separate_columns():
    from haan_core.reported import reported_map
    from haan_core.tables import compare_over_seeds
    t = S.over_seeds([_rec("HAAN", 0, 0.5), _rec("HAAN", 1, 0.7)])
    c = compare_over_seeds(t, "corel5k")
    rep = reported_map("corel5k").loc["HAAN", "avg"]
    assert c.loc["HAAN", ("AVG", "reported")] == rep
    assert c.loc["HAAN", ("AVG", "measured mean")] == pytest.approx(0.6)
    assert c.loc["HAAN", ("AVG", "difference")] == pytest.approx(0.6 - rep)


def test_method_code_sees_haans_modules_and_exact_fp32_but_not_presentation():
    from haan_core.provenance import PACKAGE_DIR
    asked = []

    def reader(edit=None):
        def read(name):
            asked.append(name)
            text = (PACKAGE_DIR / name).read_bytes()
            return edit(name, text) if edit else text
        return read
    base = S.method_code(reader())
    assert base == S.method_code()
    assert "tables.py" not in asked and "sweep.py" not in asked and "book.py" not in asked
    assert S.method_code(reader(lambda n, t: t + b"\n# x" if n == "losses.py" else t)) != base
    fp32 = lambda n, t: t.replace(b"allow_tf32=False", b"allow_tf32=True") \
        if n == "provenance.py" else t
    assert S.method_code(reader(fp32)) != base
    other = lambda n, t: t.replace(b'"""Where a measured number', b'"""Where a number') \
        if n == "provenance.py" else t
    assert S.method_code(reader(other)) == base      # elsewhere in provenance.py: same code


def test_a_recorded_equivalence_keeps_runs_across_a_refactor_only_forward(tmp_path,
                                                                         monkeypatch):
    S.sweep(tiny_grid(seeds=(0,)), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    old = S.method_code()
    monkeypatch.setattr(S, "method_code", lambda read=None, method="haan": "b" * 64)
    assert len(S.plan(tiny_grid(seeds=(0,)), results_dir=tmp_path)[0]) == 2
    eq = tmp_path / "code_equivalences.json"
    eq.write_text(json.dumps([{"from": "b" * 64, "to": old, "evidence": "wrong way"}]))
    assert len(S.plan(tiny_grid(seeds=(0,)), results_dir=tmp_path)[0]) == 2
    eq.write_text(json.dumps([{"from": old, "to": "a" * 64, "evidence": "step 1"},
                              {"from": "a" * 64, "to": "b" * 64, "evidence": "step 2"}]))
    todo, done = S.plan(tiny_grid(seeds=(0,)), results_dir=tmp_path)
    assert not todo and len(done) == 2


def test_runs_made_before_a_configuration_field_existed_still_count(tmp_path):
    """A field added later (method) is read with the one value older code could run."""
    S.sweep(tiny_grid(seeds=(0,)), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    for p in (tmp_path / "synthetic").glob("*.json"):
        rec = json.loads(p.read_text())
        del rec["identity"]["method"]
        p.write_text(json.dumps(rec))
    assert not S.plan(tiny_grid(seeds=(0,)), results_dir=tmp_path)[0]


def test_methods_over_seeds_sit_beside_their_own_papers_reported_rows():
    from haan_core.reported import load
    from haan_core.tables import compare_methods_over_seeds
    liu = [{**_rec("HAAN", s, a), "method": "liu"} for s, a in ((0, 0.5), (1, 0.6))]
    recs = [_rec("HAAN", 0, 0.6), _rec("HAAN", 1, 0.62)] + liu + \
        [{**_rec("HAAN", 0, 0.4), "method": "shan"}]
    t = compare_methods_over_seeds(S.over_seeds(recs, order=["HAAN", "liu", "shan"]),
                                   "corel5k")
    assert list(t.index) == ["HAAN", "liu", "shan"]
    liu_rep = load("liu2023_table4").set_index("method").loc["Liu et al. (their method)"]
    assert t.loc["liu", ("AVG", "reported")] == pytest.approx(liu_rep["corel5k_avg"])
    assert t.loc["liu", ("AVG", "measured mean")] == pytest.approx(0.55)
    assert t.loc["liu", ("AVG", "difference")] == pytest.approx(0.55 - liu_rep["corel5k_avg"])
    assert t.loc["liu", ("", "reported in")] == "Liu et al.'s Table 4"
    assert t.loc["HAAN", ("AVG", "reported")] == 0.5751
    assert t.loc["HAAN", ("", "reported in")] == "HAAN's Table 3"
    assert t.loc["HAAN", ("AVG", "sd")] == pytest.approx(0.0141421, abs=1e-6)
    assert t.loc["shan", ("", "reported in")] == "not reported"
    assert t[("AVG", "reported")].isna().loc["shan"]
    k = compare_methods_over_seeds(S.over_seeds([{**_rec("HAAN", 0, 0.4), "method": "kcca"}]),
                                   "corel5k")
    assert k.loc["kcca", ("AVG", "reported")] == 0.4461   # HAAN's Table 3 KCCA row
    c = compare_methods_over_seeds(S.over_seeds([{**_rec("HAAN", 0, 0.4), "method": "cca"}]),
                                   "corel5k")
    assert c.loc["cca", ("AVG", "reported")] == 0.1067 and \
        c.loc["cca", ("", "reported in")] == "Liu et al.'s Table 4"
    # on a dataset Liu et al. did not use, their row has no reported number
    w = compare_methods_over_seeds(S.over_seeds(liu), "wiki")
    assert w.loc["liu", ("", "reported in")] == "not reported"


def test_sgraf_is_the_average_of_an_sgr_and_an_saf_runs_matrices(tmp_path):
    """SGRAF's row is derived, per seed, from committed SGR and SAF runs: the scores of the
    mean of their two test matrices; a seed with only one of them gives no row."""
    grid = S.Grid("tiny", "synthetic", "", (("HAAN", (("method", "sgr"),)),
                                           ("HAAN", (("method", "saf"),))),
                  base=TINY + (("batch_size", 40),), seeds=(0,))
    S.sweep(grid, device="cpu", results_dir=tmp_path, log=lambda *_: None)
    S.sweep(S.Grid("one", "synthetic", "", (("HAAN", (("method", "sgr"),)),), base=grid.base,
                   seeds=(1,)), device="cpu", results_dir=tmp_path, log=lambda *_: None)
    runs = S.load_runs("synthetic", tmp_path, method=None)
    assert sorted(r["name"] for r in runs) == ["saf-seed0", "sgr-seed0", "sgr-seed1"]
    (row,) = S.combined_runs(runs, tmp_path)
    assert row["name"] == "sgraf-seed0" and row["derived_from"] == ["sgr-seed0", "saf-seed0"]
    m = {r["method"]: S.load_matrices(r, tmp_path) for r in runs if r["seed"] == 0}
    expected = retrieval_scores((m["sgr"]["S"] + m["saf"]["S"]) / 2, m["sgr"]["img_labels"],
                                m["sgr"]["txt_labels"])
    assert row["avg"] == pytest.approx(expected["avg"], abs=1e-12)
    assert list(S.over_seeds(runs + [row]).index) == ["saf", "sgr", "sgraf"]
