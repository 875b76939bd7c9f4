"""Speed, measured on this machine: ``python -m haan_core bench``.

Every number is printed beside a reference measured in the same run, on the same machine:

- one training epoch of HAAN at Corel 5K shapes (4493 training pairs, B = 100, 1280-d
  EfficientNet-Lite0-sized features, 3 x 3 patches, texts of 2-5 words, 1024-d common
  space, 300-d words), in fp32 and in bf16, and the full recipe (E = 100) projected from
  it; the reference is the fp32 epoch;
- ``similarity.lcm`` on N = M = 1000 images and texts against a per-caption loop written
  from eqs. 11-15 (which builds each text-context vector kappa), with the GFLOP/s each
  achieves on the essential (N alpha x d) by (d x M beta) product, beside this machine's own
  measured matrix-product peak (fp32 and bf16);
- mAP (eq. 25) on a 2000 x 2000 matrix against a loop over queries;
- optionally, one training step of each named pairwise method (``--methods shan,sgr``; the
  methods whose score is a network over each pair) beside HAAN's, at Corel shapes with the
  method's own batch size, and the recipe each projects to (:func:`train_step`);
- optionally, one book notebook executed through papermill (``--notebook NAME``).

The data are generated in Corel's shapes (they are random, not Corel's), so the timings need
no dataset. Timings are never asserted in tests; ``--quick`` shrinks every size so that the
command's own test runs in seconds (its numbers then say nothing about speed).
"""
from __future__ import annotations

import platform
import time

import torch

from .config import HAANConfig
from .datasets import make_synthetic
from .provenance import cpu_model, device_description, git_commit, resolve_device, write_json

SIZES = {  # full: the shapes of the paper's Corel 5K recipe; quick: for the tests
    "full": {"n_train": 4493, "n_val": 250, "feat_dim": 1280, "embed_dim": 1024,
             "word_dim": 300, "batch_size": 100, "lcm_n": 1000, "lcm_d": 1024,
             "loop_captions": 50, "map_n": 2000, "matmul": 4096, "epochs_recipe": 100,
             "corel_train": 4493},
    "quick": {"n_train": 200, "n_val": 50, "feat_dim": 32, "embed_dim": 32,
              "word_dim": 16, "batch_size": 50, "lcm_n": 40, "lcm_d": 32,
              "loop_captions": 10, "map_n": 100, "matmul": 128, "epochs_recipe": 100,
              "corel_train": 4493},
}


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(n: int, dtype: torch.dtype, device: torch.device) -> float:
    """GFLOP/s of an n x n by n x n product, best of 3 after a warm-up."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def run():
        (a @ b).sum().item()   # .item() waits for a GPU to finish
    run()
    return 2 * n ** 3 / _best_of(run) / 1e9


def lcm_per_caption(patches, words, lengths, lam: float = 9.0) -> torch.Tensor:
    """Eqs. 11-15 one caption at a time, vectorised over images only, building each
    text-context vector kappa (eq. 13) explicitly: the reference for ``lcm``."""
    import torch.nn.functional as F
    cols = []
    for q in range(words.shape[0]):
        w = words[q, : int(lengths[q])]                                   # (beta_q, d)
        U = F.normalize(patches, dim=-1) @ F.normalize(w, dim=-1).T       # eq. 11 (N, a, b)
        r = torch.relu(U)
        U_bar = r / r.norm(dim=1, keepdim=True).clamp_min(1e-8)           # eq. 12
        A = torch.softmax(lam * U_bar, dim=2)                             # eq. 13
        kappa = A @ w                                                     # (N, a, d)
        rel = F.cosine_similarity(patches, kappa, dim=-1, eps=1e-8)       # eq. 14
        cols.append(rel.mean(dim=1))                                      # eq. 15
    return torch.stack(cols, dim=1)


def map_per_query(sim, ql, gl) -> float:
    """mAP (eq. 25) one query at a time: the reference for the vectorised metric."""
    total = 0.0
    for i in range(sim.shape[0]):
        order = torch.sort(sim[i], descending=True, stable=True).indices
        rel = (gl[order] == ql[i]).double()
        hits = rel.cumsum(0)
        ranks = torch.arange(1, len(rel) + 1, dtype=torch.float64)
        total += float((hits / ranks * rel).sum() / rel.sum().clamp_min(1))
    return total / sim.shape[0]


def bench_epoch(size: dict, precision: str, device: str) -> dict:
    """One epoch of HAAN's training (validation included) at Corel shapes."""
    from .train import train
    data = make_synthetic(seed=0, n_train=size["n_train"], n_val=size["n_val"], n_test=20,
                          feat_dim=size["feat_dim"], min_len=2, max_len=5)
    cfg = HAANConfig.for_dataset("synthetic", epochs=1, batch_size=size["batch_size"],
                                 embed_dim=size["embed_dim"], word_dim=size["word_dim"],
                                 precision=precision, device=device, progress=False)
    train(cfg.replace(epochs=1), data=data)             # warm-up: first-call costs
    result = train(cfg, data=data)
    return {"precision": precision, "epoch_s": result.train_seconds,
            "iterations": len(result.loss_history),
            "projected_recipe_s": result.train_seconds * size["epochs_recipe"]}


# the methods whose score is a network over each image-text pair: their training step, not
# HAAN's, decides how long their Corel 5K recipes take
PAIRWISE = ("shan", "tshsr", "scan", "sgr", "saf")


def train_step(method: str, size: dict, device: str, repeat: int = 3) -> dict:
    """Seconds of one training step of ``method`` (every network: encoders, the B x B
    similarity, the loss, backward, gradient clipping, Adam), best of ``repeat`` after a
    warm-up, on one batch at Corel shapes with the method's own batch size (its recipe's;
    HAAN's 100). The step is the body of :func:`haan_core.train.train`'s loop, written
    again here because moving it out of train.py would change the code hash of every
    committed run; it differs in one thing, Adam's unfused update (the loop uses the fused
    one), so it overstates a step slightly. The projected recipe is the step times the iterations of Corel 5K's training
    split (``n_train`` pairs) times the recipe's epochs (validation not included)."""
    import math

    from .methods import recipe
    from .train import build_model, image_input, make_loss
    dev = resolve_device(device)
    r = recipe(method, "corel5k") if method != "haan" else {}
    B = min(r.get("batch_size", size["batch_size"]), size["n_train"])
    data = make_synthetic(seed=0, n_train=B, n_val=2, n_test=2, feat_dim=size["feat_dim"],
                          min_len=2, max_len=5)
    cfg = HAANConfig.for_dataset("synthetic", method=method, batch_size=B,
                                 embed_dim=size["embed_dim"], word_dim=size["word_dim"],
                                 device=device, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg, data, dev).to(dev)
    nets = {k: n for k, n in model.networks().items()
            if any(p.requires_grad for p in n.parameters())}
    opts = {k: torch.optim.Adam(n.parameters(), lr=cfg.lr) for k, n in nets.items()}
    loss_fn = make_loss(cfg)
    b = data.batch(data.splits["train"], dev)

    def step():
        for key, net in nets.items():
            img = net.encode_images(image_input(net, key, b))
            txt = net.encode_texts(b["tokens"], b["lengths"])
            loss = loss_fn(net.similarity(img, txt).float(), b["img_labels"], b["txt_labels"])
            extra = getattr(net, "extra_loss", None)
            if extra is not None:
                loss = loss + extra(img, txt, b["img_labels"], b["txt_labels"])
            opts[key].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opts[key].step()
        loss.item()                       # waits for a GPU to finish
    step()
    seconds = _best_of(step, repeat)
    epochs = r.get("epochs", size["epochs_recipe"])
    per_epoch = math.ceil(size["corel_train"] / B)
    return {"method": method, "batch_size": B, "step_s": seconds, "recipe_epochs": epochs,
            "iterations_per_epoch": per_epoch,
            "projected_recipe_s": seconds * per_epoch * epochs}


def seed_spread(seeds=(0, 1, 2), precisions=("fp32", "bf16"), device: str = "cpu",
                **overrides) -> dict:
    """Test mAP of the synthetic default (HAAN, 30 epochs) for each seed and precision: what
    a faster arithmetic does to the numbers, beside the seed-to-seed spread."""
    import statistics

    from .train import train
    out = {"machine": {"device": device_description(resolve_device(device)),
                       "cpu": cpu_model(), "torch": torch.__version__, **git_commit()},
           "dataset": "synthetic", "overrides": overrides, "runs": []}
    for precision in precisions:
        for seed in seeds:
            cfg = HAANConfig.for_dataset("synthetic", seed=seed, precision=precision,
                                         device=device, progress=False, **overrides)
            r = train(cfg)
            out["runs"].append({"precision": precision, "seed": seed, "avg": r.test["avg"],
                                "i2t": r.test["i2t"], "t2i": r.test["t2i"],
                                "train_seconds": r.train_seconds})
    out["summary"] = {}
    for precision in precisions:
        avgs = [x["avg"] for x in out["runs"] if x["precision"] == precision]
        out["summary"][precision] = {"mean": statistics.mean(avgs),
                                     "sd": statistics.stdev(avgs) if len(avgs) > 1 else 0.0,
                                     "n": len(avgs)}
    return out


def run(quick: bool = False, device: str = "auto", notebook: str | None = None,
        methods=()) -> dict:
    size = SIZES["quick" if quick else "full"]
    dev = resolve_device(device)
    out = {"machine": {"device": device_description(dev), "cpu": cpu_model(),
                       "python": platform.python_version(), "torch": torch.__version__,
                       **git_commit()},
           "quick": quick, "sizes": size}
    # the machine's own matrix-product peak
    out["matmul_gflops"] = {"fp32": matmul_peak(size["matmul"], torch.float32, dev),
                            "bf16": matmul_peak(size["matmul"], torch.bfloat16, dev)}
    # training: fp32 is the reference
    out["epoch"] = {p: bench_epoch(size, p, device) for p in ("fp32", "bf16")}
    # lcm against the per-caption loop
    from .similarity import lcm
    g = torch.Generator().manual_seed(0)
    n, d, alpha, beta = size["lcm_n"], size["lcm_d"], 9, 5
    patches = torch.randn(n, alpha, d, generator=g).to(dev)
    words = torch.randn(n, beta, d, generator=g).to(dev)
    lengths = torch.randint(1, beta + 1, (n,), generator=g).to(dev)
    lcm(patches[:2], words[:2], lengths[:2])
    t_lcm = _best_of(lambda: lcm(patches, words, lengths).sum().item(), repeat=2)
    k = size["loop_captions"]
    start = time.perf_counter()
    loop = lcm_per_caption(patches, words[:k], lengths[:k])
    t_loop = (time.perf_counter() - start) * n / k         # scaled to all n captions
    agree = float((loop - lcm(patches, words[:k], lengths[:k])).abs().max())
    essential = 2 * n * alpha * d * n * beta / 1e9          # GFLOP of (N a x d)(d x M b)
    out["lcm"] = {"n": n, "d": d, "alpha": alpha, "beta": beta, "lcm_s": t_lcm,
                  "loop_s": t_loop, "loop_captions_timed": k, "speedup": t_loop / t_lcm,
                  "lcm_gflops": essential / t_lcm, "loop_gflops": essential / t_loop,
                  "fraction_of_fp32_peak": essential / t_lcm / out["matmul_gflops"]["fp32"],
                  "max_abs_difference": agree}
    # mAP against the per-query loop
    from .metrics import mean_average_precision
    m = size["map_n"]
    sim = torch.rand(m, m, generator=g)
    labels = torch.randint(50, (m,), generator=g)
    t_map = _best_of(lambda: mean_average_precision(sim, labels, labels))
    start = time.perf_counter()
    ref = map_per_query(sim, labels, labels)
    t_ref = time.perf_counter() - start
    out["map"] = {"n": m, "map_s": t_map, "loop_s": t_ref, "speedup": t_ref / t_map,
                  "difference": abs(ref - mean_average_precision(sim, labels, labels))}
    if methods:   # each pairwise method's training step beside HAAN's, measured here too
        out["steps"] = {m: train_step(m, size, device) for m in ("haan", *methods)}
    if notebook:
        import tempfile
        from pathlib import Path

        from .book import run_notebook
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_notebook(notebook, force=True, out_dir=Path(tmp), log=lambda *_: None)
            out["notebook"] = {"name": notebook, "seconds": time.perf_counter() - start}
    return out


def report(r: dict) -> str:
    """The measured numbers as a plain-text table, each beside its reference."""
    e32, e16 = r["epoch"]["fp32"], r["epoch"]["bf16"]
    lc, mp = r["lcm"], r["map"]
    cpu = r["machine"].get("cpu")   # files measured before it was recorded lack it
    lines = [f"MEASURED on {r['machine']['device']}" + (f", {cpu}" if cpu else "") +
             f", torch {r['machine']['torch']}, commit {(r['machine']['commit'] or 'none')[:10]}"
             + (" (QUICK sizes: not a speed measurement)" if r["quick"] else ""),
             "",
             f"{'what':<46}{'measured':>14}{'reference':>14}{'ratio':>8}",
             f"{'matmul peak GFLOP/s, bf16 vs fp32':<46}{r['matmul_gflops']['bf16']:>14.1f}"
             f"{r['matmul_gflops']['fp32']:>14.1f}"
             f"{r['matmul_gflops']['bf16'] / r['matmul_gflops']['fp32']:>8.2f}",
             f"{'training epoch s, bf16 vs fp32':<46}{e16['epoch_s']:>14.2f}{e32['epoch_s']:>14.2f}"
             f"{e32['epoch_s'] / e16['epoch_s']:>8.2f}",
             f"{'full recipe s (E = 100), bf16 vs fp32':<46}{e16['projected_recipe_s']:>14.0f}"
             f"{e32['projected_recipe_s']:>14.0f}{'':>8}",
             f"{'lcm s, vectorised vs per-caption loop':<46}{lc['lcm_s']:>14.3f}"
             f"{lc['loop_s']:>14.3f}{lc['speedup']:>8.1f}",
             f"{'lcm GFLOP/s vs fp32 matmul peak':<46}{lc['lcm_gflops']:>14.1f}"
             f"{r['matmul_gflops']['fp32']:>14.1f}{lc['fraction_of_fp32_peak']:>8.2f}",
             f"{'mAP s, vectorised vs per-query loop':<46}{mp['map_s']:>14.4f}"
             f"{mp['loop_s']:>14.4f}{mp['speedup']:>8.1f}"]
    if "steps" in r:
        ref = r["steps"]["haan"]
        for m, st in r["steps"].items():
            if m == "haan":
                continue
            lines.append(f"{m + ' step s (B = ' + str(st['batch_size']) + ') vs HAAN (B = ' + str(ref['batch_size']) + ')':<46}"
                         f"{st['step_s']:>14.2f}{ref['step_s']:>14.2f}"
                         f"{st['step_s'] / ref['step_s']:>8.2f}")
            lines.append(f"{'  ' + m + ' recipe s projected (E = ' + str(st['recipe_epochs']) + ')':<46}"
                         f"{st['projected_recipe_s']:>14.0f}{ref['projected_recipe_s']:>14.0f}")
    if "notebook" in r:
        lines.append(f"{'notebook ' + r['notebook']['name'] + ' s':<46}"
                     f"{r['notebook']['seconds']:>14.1f}")
    lines += ["",
              f"lcm: N = M = {lc['n']}, alpha = 9, beta = 5, d = {lc['d']}; the loop timed "
              f"{lc['loop_captions_timed']} captions and is scaled to {lc['n']}; the two agree "
              f"to {lc['max_abs_difference']:.1e}. mAP: {mp['n']} x {mp['n']}, loop and "
              f"vectorised agree to {mp['difference']:.1e}."]
    return "\n".join(lines)


def main(quick: bool = False, device: str = "auto", out=None, notebook=None,
         methods=()) -> dict:
    r = run(quick=quick, device=device, notebook=notebook, methods=methods)
    print(report(r))
    if out:
        write_json(out, r)
        print(f"wrote {out}")
    return r
