# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
# Parameters. Re-run with new values:
#   python -m haan_core.book run table3 -p seed 3 -p epochs 10
dataset = "synthetic"   # synthetic | (real datasets: see the data section)
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"         # auto: CUDA when present, else CPU
epochs = None           # int or None: None takes the dataset's recipe
batch_size = None       # int or None: None takes the dataset's recipe
rho = 0.6
variants = ["HAAN", "HAAN-GCM", "HAAN-LCM", "HAAN-GCM-LCM", "HAAN-GCM-LCM-TRI",
            "HAAN-GCM-LCM-AWL(Stage1)", "HAAN-GCM-LCM-AWL(Stage2)"]
methods = ["liu", "cca", "kcca", "dcca", "dscmr", "scan", "sgr", "saf", "shan", "tshsr"]
# compared methods (issues #11, #12), same data and seed, each its own recipe; [] for none
method_epochs = None    # dict or None: None: on synthetic data sgr, tshsr 1 epoch, saf,
# shan 3 (their recipes take hours on a CPU; the page says so); {}: full recipes; {"sgr": 10}
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout
kept_runs = True        # False trains here every run the page reads from the runs kept in
# data/measured/book_runs (those that take 10 s or more; same configuration and code)

# %% [markdown]
# # Table 3: mAP of image-text retrieval
#
# Table 3 of the paper {cite}`wang2023haan` reports the mAP of HAAN and eleven other methods
# (KCCA {cite}`ballan2014kcca`, JRL {cite}`zhai2014jrl`, JFSSL {cite}`wang2016jfssl`,
# DCCA {cite}`andrew2013dcca`, SCAN {cite}`lee2018scan`, MAVA {cite}`peng2019mava`,
# SGRAF {cite}`diao2021sgraf`, SCL {cite}`liu2022scl`, CGMN {cite}`cheng2022cgmn`,
# NAAF {cite}`zhang2022naaf`, VSRN++ {cite}`li2022vsrnpp`) on Corel 5K,
# Pascal Sentence and Wiki, for image-to-text (I2T) and text-to-image (T2I) retrieval,
# and their average (AVG). This page shows the paper's **reported** table as printed.
# Below it are the **measured** numbers of every method haan_core has (HAAN, the six
# ablation configurations of Table 5 and the compared methods in `methods`), trained by
# this notebook with the parameters above, or, where a run takes 10 s or more at the
# defaults, read from the runs kept in the repository (a printed line that starts with
# KEPT names them and where they were trained; `kept_runs = False` trains them here).
# A measured number is shown next to the paper's value only where the paper reports the
# same method on the same dataset.

# %%
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from haan_core.experiments import (data_label, kept_note, make_config, train_methods,
                                   train_variants)
from haan_core.errors import HAANInputError
from haan_core.reported import DATASET_TITLES
from haan_core.tables import (compare, measured_map, provenance_table, reported_table3,
                              style_best)

# %% [markdown]
# ## Reported (the paper's Table 3)
#
# These values are copied from the paper, not produced here. ∘ marks traditional
# methods and • deep ones; the best value of each column is in bold.

# %%
style_best(reported_table3(), caption="REPORTED in the paper: Table 3, mAP")

# %% [markdown]
# ### The rows Table 3 shares with Liu et al.'s Table 4
#
# Liu et al. {cite}`liu2023multigrained`, from HAAN's own lab, report mAP on Corel 5K too
# (their Table 4, also Pascal Sentence and NUS-WIDE 5K; all in
# `haan_core/paper_tables/liu2023_table4_reported_map.csv`). Below, every Corel 5K row the
# two tables share, and each paper's own method, side by side. **Both sides are reported
# numbers**; the difference is Liu et al.'s minus HAAN's.

# %%
from haan_core.reported import HAAN_OWN, LIU_OWN, load, shared_corel5k_rows

shared = shared_corel5k_rows()
display(shared.style.hide(axis="index").format(precision=4).set_caption(
    "REPORTED by both papers, Corel 5K: HAAN's Table 3 beside Liu et al.'s Table 4"))
h = load("table3").set_index("method").loc[HAAN_OWN]
l = load("liu2023_table4").set_index("method").loc[LIU_OWN]
display(Markdown(
    f"{len(shared) - 1} compared methods appear in both tables; their largest difference "
    f"is {shared.iloc[:-1][['diff I2T', 'diff T2I', 'diff AVG']].abs().max().max():.4f}. "
    f"The two papers' own rows have the same AVG ({h['corel5k_avg']:.4f} and "
    f"{l['corel5k_avg']:.4f}); crossed, Liu et al.'s I2T minus HAAN's T2I is "
    f"{l['corel5k_i2t'] - h['corel5k_t2i']:+.4f} and Liu et al.'s T2I minus HAAN's I2T is "
    f"{l['corel5k_t2i'] - h['corel5k_i2t']:+.4f}. This is what the numbers show; the papers "
    "do not say why."))

# %% [markdown]
# ## Measured (this run)

# %%
cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs,
                  batch_size=batch_size, rho=rho)
runs = train_variants(variants, dataset, cache_dir=cache_dir, kept=kept_runs,
                      root=root, seed=seed,
                      device=device, epochs=epochs, batch_size=batch_size, rho=rho)
method_runs = train_methods(methods, dataset, cache_dir=cache_dir, kept=kept_runs,
                            root=root, seed=seed,
                            method_epochs=method_epochs,
                            device=device, epochs=epochs, batch_size=batch_size, rho=rho)
for line in (method_runs.note, method_runs.recipe_note(cfg), method_runs.scaled_note,
             kept_note({**runs, **method_runs})):
    if line:
        print(line)
compared = [m for m in method_runs if m not in runs]   # rows below the HAAN configurations
all_runs = {**runs, **method_runs}
measured = measured_map(all_runs)
combined = method_runs.combined_scores()   # SGRAF: the mean of SGR's and SAF's matrices
if combined:
    measured = pd.concat([measured, pd.DataFrame(combined).T[measured.columns]])
table = compare(measured, dataset)
caption = (f"MEASURED on {data_label(cfg)}: seed {seed}, {cfg.epochs} epochs, "
           f"batch {cfg.batch_size}, rho {cfg.rho}" +
           (f"; compared method{'s' * (len(compared) > 1)} in the last "
            f"row{'s' * (len(compared) > 1)}: {', '.join(compared)}, "
            "trained by the same loop on the same data" if compared else "")
           + ("; SGRAF: the mean of the SGR and SAF rows' test matrices (nothing trained)"
              if combined else "")
           + method_runs.scaled_caption)
style_best(table, caption=caption)

# %%
glue("t3_dataset", data_label(cfg), display=False)
glue("t3_haan_avg", float(measured.loc["HAAN", "avg"]) if "HAAN" in measured.index
     else float("nan"), display=False)
glue("t3_best", measured.loc[list(runs), "avg"].idxmax() if runs else "none",
     display=False)
glue("t3_epochs", cfg.epochs, display=False)
glue("t3_seed", seed, display=False)

# %% [markdown]
# On {glue:text}`t3_dataset`, trained for {glue:text}`t3_epochs` epochs with seed
# {glue:text}`t3_seed`, HAAN reaches a measured AVG mAP of {glue:text}`t3_haan_avg:.4f`.
# Of the HAAN configurations, the one with the highest measured AVG is
# {glue:text}`t3_best`.
#
# The "reported" and "difference" columns stay empty on the synthetic data, because the
# paper has no such numbers: the synthetic data lets a reader see the method work in
# minutes, not reproduce the paper's values. Runs on the paper's datasets fill them in.
#
# The rows below the HAAN configurations are the compared methods named in `methods`,
# implemented in `haan_core.methods` from their papers: SHAN {cite}`ji2021shan`, TSHSR
# {cite}`chen2023tshsr`, the method of Liu et al. {cite}`liu2023multigrained`, CCA
# {cite}`hotelling1936cca`, KCCA {cite}`ballan2014kcca`, DCCA {cite}`andrew2013dcca`, SCAN
# {cite}`lee2018scan`, SGRAF's SGR and SAF {cite}`diao2021sgraf` and DSCMR
# {cite}`zhen2019dscmr` (`python -m haan_core methods` lists them). A method
# that cannot be trained yet is left out, and the line printed above the table names it.
# Each is trained by HAAN's training loop on the same data as HAAN (by default the
# synthetic data), with the same seed, and tested on the same split; where a method's paper
# gives its own epochs, batch size or learning rate, the method keeps them, and a line
# printed above the table says so. On the synthetic data, the four slowest (SGR, SAF, SHAN
# and TSHSR, from under a minute to about 4 minutes an epoch on one core of a busy 2-core
# CPU) train for fewer epochs than their recipes, so that the book builds in minutes: the
# line that starts with SCALED and the caption name them, and their rows are short runs,
# not the recipes' results. The parameter `method_epochs = {}` trains the full recipes
# (hours on a CPU). The SGRAF row is computed, not trained: the mean of the SGR and SAF
# rows' test matrices, as Diao et al. combine them.
# On the synthetic data these numbers show each implementation running end to end; no
# paper reports this data, so the "reported" cells stay empty. The committed Corel 5K runs
# below are the comparison with the papers.

# %% [markdown]
# ## Recall@K of the same runs (instance level)
#
# SHAN {cite}`ji2021shan` and TSHSR {cite}`chen2023tshsr` report Recall@K instead of mAP:
# the share of queries whose own paired item (the text of the image, or the image of the
# text) is among the first K. Classes play no part, so a correct class ranked above the
# pair's own item counts as a miss: this is a stricter, different question from the mAP of
# Table 3, and HAAN is not trained for it; nor are the compared methods here, which are
# trained with class-aware losses like HAAN. Measured on the same test similarity matrices
# as the table above (HAAN's fused by eq. 7, a compared method's single one); ties keep
# gallery order (ambiguity log, entry 35).
# The last row is a reference, computed, not trained: a ranking that puts every item of the
# query's class first, in random order, has the own item in its top K with probability
# min(K, n) / n for a class of n test items. Near it, a method ranks classes well and
# cannot tell the items of a class apart, which class labels never asked it to do.

# %%
from haan_core.metrics import recall_scores

recall_rows = {}
for name, r in all_runs.items():
    rec = recall_scores(r.test_eval["sims"]["fused"])
    recall_rows[name] = {f"{way.upper()} R@{k}": rec[way][k]
                         for way in ("i2t", "t2i") for k in (1, 5, 10)}
# reference row: every item of the query's class first, in random order within the class;
# the own item is then in the top K with probability min(K, n) / n (n: its class's size)
txt_labels = next(iter(all_runs.values())).test_eval["txt_labels"]
img_labels = next(iter(all_runs.values())).test_eval["img_labels"]
def class_level(labels, k):
    n = (labels[:, None] == labels[None, :]).sum(dim=1).double()
    return float((n.clamp(max=k) / n).mean())
recall_rows["(reference) classes perfect, random within a class"] = {
    f"{way.upper()} R@{k}": class_level(txt_labels if way == "i2t" else img_labels, k)
    for way in ("i2t", "t2i") for k in (1, 5, 10)}
recall_table = pd.DataFrame(recall_rows).T
display(recall_table.style.format("{:.3f}").set_caption(
    f"MEASURED Recall@K on {data_label(cfg)} ({len(img_labels)} test pairs), same runs as "
    "above" + (f"; compared method{'s' * (len(compared) > 1)}: {', '.join(compared)}"
                 if compared else "")))

# %% [markdown]
# ## Where the measured numbers come from

# %%
provenance_table(all_runs)

# %% [markdown]
# ## Measured on the paper's datasets (committed runs)
#
# A run of the paper's recipe on a real dataset takes about an hour on a laptop CPU, too
# long for every build of this book. Such runs are committed as small result files in
# `data/measured/`, each with its provenance, and read here. Each is regenerated by the
# one command shown in its row (`python -m haan_core measure NAME --root DIR`). Every
# run differs from the paper in some way the machine forced; the deviations are listed
# under each table, and the difference column is measured minus reported.

# %%
from haan_core import sweep
from haan_core.measured import (MEASUREMENTS, load_measured, main_records, measured_rows,
                                provenance_rows)

committed = load_measured()
for ds in ("corel5k", "pascal", "wiki"):
    recs = [r for r in main_records(committed) if r["dataset"] == ds]
    if ds == "corel5k" and sweep.select(sweep.load_runs("corel5k"), "HAAN"):
        # the sweep's seeds replace the one-seed run: HAAN's Corel 5K row is their mean
        display(Markdown(
            "**Corel 5K**: HAAN's measured row is the mean ± sd over the seeds of the "
            "`table6` sweep, beside the reported row, in *Corel 5K over seeds* below. The "
            "one-seed run of `python -m haan_core measure corel5k_haan` is kept as one arm "
            "of the comparison of validation/test cuts that follows."))
        continue
    if not recs:
        why = {"pascal": " Only 47 of its 1000 images were available on the machine that "
                         "measured these runs. With the internet, `python -m haan_core data "
                         "fetch pascal --root data/pascal_sentence` gets them, and `python -m "
                         "haan_core train --dataset pascal --root data/pascal_sentence "
                         "--backbone efficientnet_lite0 --out result.json` measures HAAN "
                         "with the paper's Pascal recipe (E = 30, B = 10)."}.get(ds, "")
        display(Markdown(f"**{DATASET_TITLES[ds]}**: no committed measured run." + why))
        continue
    table = compare(measured_rows(recs), ds)
    table.index = [r["label"] for r in recs]
    display(style_best(table, caption=f"{DATASET_TITLES[ds]}: MEASURED (committed run) "
                                      "beside REPORTED (paper's Table 3)"))
    for r in recs:
        display(Markdown(f"*{r['label']}*, deviations from the paper: " +
                         "; ".join(r["deviations"]) + ". " + r["notes"]))
        display(Markdown(f"Regenerate it with `{r['regenerate']}`."))
        if r.get("provenance_note"):
            display(Markdown(f"*Provenance note*: {r['provenance_note']}"))
    if ds == "wiki":
        chance = ""
        try:
            import torch
            from haan_core.corpora import default_root, load_corpus
            from haan_core.metrics import chance_map
            w = load_corpus("wiki", default_root("wiki"))
            test_labels = torch.tensor([w.labels[i] for i in w.splits["test"]])
            chance = (f"{chance_map(test_labels, test_labels):.4f} (measured on the Wiki "
                      "test labels of this machine's copy)")
        except HAANInputError:
            pass
        display(Markdown(
            "The Wiki row measures the global network alone on 128-d SIFT bag-of-words "
            "image features, which describe local gradients and carry far less of an "
            "image's meaning than a CNN feature; the paper's HAAN-GCM uses VGG19 fc7. The "
            "image features are the largest difference from the paper's setting, so this "
            "row does not test the paper's Wiki numbers; it shows the method running on "
            "Wiki's real texts. With 10 classes of unequal size, random rankings score "
            f"{chance or 'a little above 0.1'}. Fetching the Wiki images (`python -m "
            "haan_core data fetch wiki "
            "--root data/wiki`) lets the full HAAN run on CNN features."))

# %% [markdown]
# ### What the validation/test cut does (Corel 5K)
#
# The paper splits Corel 5K's 499 distinct test images into 250 for validation and 249 for
# testing without saying which (ambiguity log, entries 20 and 31). Cutting the test list
# in its file order, as this project first did, gives two halves with **no class in
# common**, because the list is sorted by Corel CD, that is by class. The best snapshot is
# then chosen on 25 classes and tested on the other 25, a smaller retrieval problem whose
# random rankings already score higher. Both runs below are MEASURED with the same recipe
# and seed; only the cut differs.

# %%
controls = [r for r in committed if MEASUREMENTS.get(r["name"]) and
            MEASUREMENTS[r["name"]].control_of]
cut_rows = []
for r in controls + [r for r in committed if any(MEASUREMENTS[c["name"]].control_of == r["name"]
                                                  for c in controls)]:
    d = r["provenance"]["data"]["split_classes"]
    cut_rows.append({"run": r["name"], "cut": r["provenance"]["config"]["val_test_split"],
                     "val classes": d["val"], "test classes": d["test"],
                     "shared by val and test": d["val_and_test_share"],
                     "I2T": r["i2t"], "T2I": r["t2i"], "AVG": r["avg"],
                     "best epoch": r["best_epoch"]})
if cut_rows:
    import pandas as pd
    cuts = pd.DataFrame(cut_rows).set_index("run")
    display(cuts.style.format({"I2T": "{:.4f}", "T2I": "{:.4f}", "AVG": "{:.4f}"})
            .set_caption("MEASURED: HAAN on Corel 5K under the two validation/test cuts"))
    if len(cuts) == 2:
        order, strat = cuts[cuts["cut"] == "order"].iloc[0], cuts[cuts["cut"] == "stratified"].iloc[0]
        display(Markdown(
            f"The order cut reads AVG {order['AVG']:.4f}; the stratified cut, where validation "
            f"and test share all {strat['shared by val and test']} classes, reads "
            f"{strat['AVG']:.4f} ({strat['AVG'] - order['AVG']:+.4f}). Random rankings score "
            "0.0600 on the order cut's test half and 0.0403 on the stratified one (ambiguity "
            "log, entry 31). Each number is one seed's: the difference says what the cut can "
            "do, not how large it is on average."))

# %%
if committed:
    display(provenance_rows(committed))
    corel = [r for r in main_records(committed) if r["dataset"] == "corel5k"
             and r["variant"] == "HAAN"]
    if corel and not sweep.select(sweep.load_runs("corel5k"), "HAAN"):   # no seeds yet
        from haan_core.reported import reported_map
        r = corel[0]
        reported_avg = float(reported_map("corel5k").loc["HAAN", "avg"])
        gap = r["avg"] - reported_avg
        verdict = ("above the reported value" if gap > 0 else
                   "within 0.02 of the reported value" if gap >= -0.02 else
                   f"short of the reported value by {-gap:.4f}")
        display(Markdown(
            f"On Corel 5K, HAAN trained with the paper's recipe reaches a MEASURED AVG mAP of "
            f"{r['avg']:.4f} (I2T {r['i2t']:.4f}, T2I {r['t2i']:.4f}; best validation epoch "
            f"{r['best_epoch']} of {r['provenance']['config']['epochs']}), against the "
            f"REPORTED {reported_avg:.4f}: {gap:+.4f}, {verdict}. The run differs from the "
            f"paper in its backbone (see above), and the paper does not say which 250 of the "
            f"499 test images it validates on (ambiguity log, entries 20 and 31; this run "
            f"cuts them {r['provenance']['config']['val_test_split']}, so validation and test "
            f"share {r['provenance']['data']['split_classes']['val_and_test_share']} classes). "
            f"The difference is one run's, with one seed, not a claim about the method."))

# %% [markdown]
# ## Corel 5K over seeds: HAAN beside the compared methods (committed sweep runs)
#
# Each row is MEASURED here, on the same EfficientNet-Lite0 features and the same split
# (validation and test share their classes), by the sweep's grids: HAAN with the paper's
# recipe (`table6`), and each compared method with its own paper's recipe (`liu`, `shan`,
# `tshsr`, `cca`, `kcca`, `dcca`, `scan`, `sgr`, `saf`, `dscmr`). The mean and the sample sd are over the seeds named in the row. Each measured
# row sits beside the REPORTED row of its own paper (HAAN's Table 3, or Liu et al.'s Table
# 4 for their method), never in the same column.

# %%
from haan_core import sweep
from haan_core.tables import compare_methods_over_seeds

corel_rows = sweep.select(sweep.load_runs("corel5k"), "HAAN") + \
    [r for r in sweep.load_runs("corel5k", method=None) if r.get("method", "haan") != "haan"]
corel_derived = sweep.combined_runs(corel_rows)   # SGRAF: the mean of SGR's and SAF's matrices
corel_summary = sweep.over_seeds(corel_rows + corel_derived,
                                 order=["HAAN", *sweep.COMPARED, *sweep.COMBINED])
if len(corel_summary):
    corel_methods = compare_methods_over_seeds(corel_summary, "corel5k")
    corel_methods.index.name = "method"
    display(corel_methods.style.format(precision=4, na_rep="")
            .set_caption("Corel 5K: MEASURED mean and sd over seeds (committed sweep runs) "
                         "beside REPORTED (each method's own paper)"))
    display(pd.DataFrame([{
        "run": r["name"], "method": sweep.row_of(r), "seed": r["seed"],
        "epochs": r["provenance"]["config"]["epochs"],
        "batch": r["provenance"]["config"]["batch_size"],
        "best epoch": r["best_epoch"], "train s": round(r["train_seconds"]),
        "device": r["device"], "commit": (r["provenance"]["commit"] or "none")[:10],
        "trained (UTC)": r["provenance"]["time_utc"]} for r in corel_rows]).set_index("run")
        .style.set_caption("Provenance of the runs above (MEASURED)"))
    print("REGENERATE:", sweep.command(",".join(["table6", *sweep.COMPARED])))
missing = [m for m in ("HAAN", *sweep.COMPARED) if m not in corel_summary.index]
notes = {
    "HAAN": "EfficientNet-Lite0 instead of VGG19 (no VGG19 weights on the machines that "
            "measured it)",
    "liu": "EfficientNet-Lite0 global and 3 x 3 crop features instead of AlexNet FC7; "
           "Framework I replaced by concatenation (`framework1=concat`, ambiguity log 50, a "
           "deviation); margin-set {7, 7.5, 8}, thirds as breaks (their breaks are not "
           "given); 10,000 iterations of batch 80 (ambiguity log 50-52); the same "
           "4,493 / 250 / 249 counts as theirs, but which 250 validate is ours (a seeded "
           "cut stratified by class)",
    "shan": "the 3 x 3 crops as regions instead of 36 Faster R-CNN objects; class-level "
            "positives (ambiguity log 40-43, 53)",
    "tshsr": "the 3 x 3 crops as regions instead of 36 Faster R-CNN objects; class-level "
             "positives; a one-epoch warm-up (ambiguity log 44-49, 53)",
    "cca": "EfficientNet-Lite0 global features and bags of tags; ridge and components "
           "chosen on validation (ambiguity log 54); HAAN's Table 3 has no linear CCA row, so "
           "the reported one is Liu et al.'s, on features their paper does not give for it",
    "kcca": "EfficientNet-Lite0 global features and bags of tags, RBF kernels through a "
            "Nystroem map on 1000 landmarks; ridge, width and components chosen on "
            "validation (ambiguity log 54); HAAN's KCCA row is Ballan et al.'s (2014)",
    "dcca": "EfficientNet-Lite0 global features and bags of tags; two hidden layers of "
            "1024 with the paper's nonlinearity, 64 outputs, trained by Adam on minibatches "
            "of 800 instead of full-batch L-BFGS with pretraining (ambiguity log 55); HAAN's "
            "DCCA row is copied from elsewhere, on features it does not give",
    "scan": "the 3 x 3 crops as regions instead of 36 Faster R-CNN objects; text-to-image "
            "attention with LogSumExp pooling, class-level positives, a one-epoch warm-up "
            "(ambiguity log 57-59)",
    "sgr": "the 3 x 3 crops as regions; class-level positives, a one-epoch warm-up "
           "(ambiguity log 60-62); HAAN's SGRAF row is the average of an SGR and an SAF "
           "network, not either alone",
    "saf": "as sgr, with SAF's recipe (ambiguity log 60-62)",
    "sgraf": "the mean of the SGR and SAF runs' test matrices of the same seed, derived "
             "here (nothing trained), as the paper combines them",
    "dscmr": "EfficientNet-Lite0 global features and bags of tags instead of VGG fc7 and "
             "Doc2Vec; the released code's sizes and loss weights (ambiguity log 56); not in "
             "HAAN's Table 3, and DSCMR's paper reports no Corel 5K number"}
display(Markdown("How each measured row's setting differs from its paper's:\n\n" + "\n".join(
    f"- **{m}**: {notes[m]}." for m in ("HAAN", *sweep.COMPARED, *sweep.COMBINED))))
if missing:
    display(Markdown(
        "Not yet measured on Corel 5K: " + ", ".join(f"**{m}**" for m in missing) + ". "
        "Each compared method's grid is regenerated by `python -m haan_core sweep NAME "
        "--root data/corel5k` (NAME: " + ", ".join(f"`{m}`" for m in sweep.COMPARED) +
        "; `table6` for HAAN); SHAN, TSHSR, SGR and SAF score every image-text pair with a "
        "network through several stages, so a Corel 5K run is hours on a CPU (SCAN's took "
        "about 330 s on a 2-core CPU): run them on a GPU (`--device cuda`) or a cluster "
        "(`--executor slurm`)."))
if "HAAN" in corel_summary.index and len(corel_summary) > 1:
    def mean_sd(row):
        n = row[("n", "")]
        return (f"{row[('mean', 'avg')]:.4f}" +
                (f" +- {row[('sd', 'avg')]:.4f} (sd over {n} seeds)" if n > 1
                 else " (one seed: no spread yet)"))
    ranked = corel_summary[("mean", "avg")].sort_values(ascending=False)
    paired = [{**r, "variant": sweep.row_of(r)} for r in corel_rows + corel_derived]
    lines = [f"- **{m}**: {mean_sd(corel_summary.loc[m])}" + (
        "" if m == "HAAN" else
        f"; HAAN minus {m} by paired seed: "
        + sweep.claim_verdict(paired, "HAAN", m)["verdict"]) for m in ranked.index]
    display(Markdown(
        f"Where HAAN stands: by mean measured AVG mAP on Corel 5K, HAAN ranks "
        f"{list(ranked.index).index('HAAN') + 1} of the {len(ranked)} measured methods. "
        "A verdict that HAAN beats a method needs three seeds of each with one sign of the "
        "difference on every paired seed (the rule of the Tables 5-6 page); a closed-form "
        "method (CCA) gives the same number at every seed.\n\n" + "\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# Each exercise uses this page's own variables and functions and takes a few minutes on a
# laptop CPU once the page has run. Where the answer is a number or a shape, the code cell
# after the exercise checks it: replace `None` with your answer and run the cell. `check`
# computes the right answer with haan_core's own code and tells you what is wrong without
# giving it away. The solutions are folded: open one after you have tried.

# %%
from haan_core.exercises import check   # check(name, answer): prints whether an answer is right

# %% [markdown]
# :::{exercise} Per cent or percentage points?
# :label: ex-table3-gain
#
# Section 4.4 says that HAAN "improves the mAP(AVG) scores by 1.83 %, 1.20 % and 1.89 %
# respectively over the previous best model VSRN++ on Corel 5K, Pascal Sentence and Wiki".
#
# 1. From the reported table, compute HAAN − VSRN++ for the AVG column of each dataset
#    (`from haan_core.reported import reported_map`; `reported_map("corel5k").loc[["HAAN", "VSRN++"], "avg"]`).
#    Are the paper's numbers relative improvements or differences in mAP points?
# 2. Compute the *relative* improvement on Corel 5K, in per cent, and write it below.
# 3. Which of the two would you report, and how would you word it so that no reader can
#    misread it?
# :::

# %%
answer = None   # your answer: the relative gain of HAAN over VSRN++ on Corel 5K, in per cent (5.0 = 5 %)
check("table3-gain", answer)

# %% [markdown] tags=["solution"]
# :::{solution} ex-table3-gain
# :class: dropdown
#
# ```python
# from haan_core.reported import reported_map
# for ds in ("corel5k", "pascal", "wiki"):
#     avg = reported_map(ds)["avg"]
#     diff = avg["HAAN"] - avg["VSRN++"]
#     print(ds, f"difference {diff:.4f}, relative {100 * diff / avg['VSRN++']:.2f} %")
# ```
#
# The differences are 0.0183, 0.0120 and 0.0189 (from the reported table): the paper's
# "1.83 %" is a difference of 1.83 **percentage points** of mAP, not a relative gain. The
# relative gain on Corel 5K is 0.0183 / 0.5568, about **3.3 %**.
#
# Both are legitimate, but they answer different questions, and "%" alone does not say
# which. Write "+1.83 points (0.5568 → 0.5751)" or "3.3 % relative". Giving the two mAP
# values themselves, as the table does, leaves no doubt. The Table 4 page has a sentence of the paper where "%"
# means the other thing.
# :::

# %% [markdown]
# :::{exercise} Which classes does each level find?
# :label: ex-table3-levels
#
# On the synthetic data, half of the classes (scenes) differ only in the global image
# feature and the other half (objects) only in a few patches.
#
# 1. For HAAN-GCM, HAAN-LCM and HAAN, compute the mean AP (eq. 25) of the image queries of
#    each class: `average_precision(ev["sims"]["fused"], ev["img_labels"], ev["txt_labels"])`
#    with `ev = runs[name].test_eval`, then average within each class
#    (`from haan_core.metrics import average_precision, chance_map`).
# 2. Compare with the chance level of the same labels, `chance_map(ev["img_labels"], ev["txt_labels"])`.
# 3. Which configuration is far above chance on which classes? What does this say about the
#    AVG column of the measured table, and about the paper's claim that the two levels are
#    complementary?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-table3-levels
# :class: dropdown
#
# ```python
# import torch
# from haan_core.metrics import average_precision, chance_map
# for name in ("HAAN-GCM", "HAAN-LCM", "HAAN"):
#     ev = runs[name].test_eval
#     ap = average_precision(ev["sims"]["fused"], ev["img_labels"], ev["txt_labels"])
#     per_class = [round(float(ap[ev["img_labels"] == c].mean()), 2)
#                  for c in ev["img_labels"].unique()]
#     print(f"{name:9s}", per_class)
# print("chance", round(chance_map(ev["img_labels"], ev["txt_labels"]), 3))
# ```
#
# Class ids 0-4 are the scenes and 5-9 the objects (`data.meta["scene_classes"]` of the
# synthetic data). What to look for: HAAN-GCM should be high on the scenes and low on the
# objects, since all objects share one global feature. It can still tell objects from
# scenes, so its object APs sit above the chance level of all ten classes, near the chance
# level among the five object classes. HAAN-LCM should show the mirror image, and HAAN
# should be high on both halves.
#
# The AVG of a single level therefore mixes two very different groups. A middling average
# can hide "perfect on half, chance on the other half". The complementarity of the two
# levels, which the paper argues for on real data (Section 4.6), is built into this
# synthetic data, so seeing it here checks the code, not the paper's claim.
# :::

# %% [markdown]
# :::{exercise} One seed is one sample
# :label: ex-table3-seed
#
# Every measured number above comes from one seed.
#
# 1. Train the best two configurations of the measured table again with seed 1, for
#    example `train_variants(["HAAN", "HAAN-GCM-LCM-AWL(Stage2)"], dataset, cache_dir=cache_dir, root=root, seed=1, device=device, epochs=epochs, batch_size=batch_size, rho=rho)`
#    (two trainings, about a minute each on a laptop CPU; replace the names by your top
#    two). On the synthetic data the seed draws a new dataset as well as a new
#    initialisation.
# 2. Compare each configuration's AVG across the two seeds with the gap between the two
#    configurations.
# 3. What would you need before writing "configuration A beats configuration B"?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-table3-seed
# :class: dropdown
#
# ```python
# runs1 = train_variants(["HAAN", "HAAN-GCM-LCM-AWL(Stage2)"], dataset, cache_dir=cache_dir,
#                        root=root, seed=1, device=device, epochs=epochs,
#                        batch_size=batch_size, rho=rho)
# for name, run1 in runs1.items():
#     print(name, "seed", seed, f"{runs[name].scores['avg']:.4f}",
#           "seed 1", f"{run1.scores['avg']:.4f}")
# ```
#
# What to look for: if a configuration moves between seeds by as much as (or more than)
# the gap between the two configurations, the order in the table can flip with the seed,
# and the table alone cannot rank them.
#
# To claim that A beats B you need several seeds per configuration (five is a common
# minimum), the mean and spread of each, and preferably the *paired* differences: train A
# and B with the same seed, hence the same data and initialisation, and look at A − B for
# each seed. If the differences keep one sign and are large compared with their spread,
# the claim holds on this data. The paper reports one number per cell with no spread, so
# its smaller gaps (a few tenths of a point in Table 3) cannot be judged this way. Use
# `python -m haan_core.book run table3 -p seed 1` to re-run the whole page.
# :::
