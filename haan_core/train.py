"""Training and evaluation, Section 4.2.3.

GAN and LAN are trained side by side, each on its own objective: C = tau(L^C) (eq. 1)
and F = tau(L^F) (eq. 4), with tau the loss the variant names. Adam, learning rate 2e-4
for the first E/2 epochs and x0.1 after, gradient norm clipped at 2 (per network), mAP on
the validation split after every epoch, and the best snapshot is the one tested.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .config import HAANConfig
from .datasets import PairedData, load_dataset
from .errors import HAANInputError
from .losses import awl, triplet
from .metrics import retrieval_scores
from .models import HAAN, fuse
from .provenance import (exact_fp32, git_commit, provenance, resolve_device, save_torch,
                         write_json)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(cfg: HAANConfig, device: torch.device):
    """The networks' forward pass in bf16 when ``cfg.precision`` is "bf16" (autocast: matrix
    products and the GRU in bf16, reductions in fp32); a no-op in fp32. Losses (eq. 23), the
    mining and weighting of AWL and mAP (eq. 25) always run in fp32 on fp32 matrices."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def make_loss(cfg: HAANConfig):
    """tau of eqs. 1 and 4 for this variant: AWL (with its stage switches), TRI, or the
    base loss of the variants that have neither (see the ambiguity log)."""
    if cfg.method != "haan":   # a compared method brings its own loss
        from .methods import method_loss
        return method_loss(cfg)
    v = cfg.variant_spec
    kind = v.loss if v.loss != "base" else ("tri" if cfg.base_loss == "tri" else "plain")
    if kind == "tri":
        return lambda s, il, tl: triplet(s, il, tl, margin=cfg.tri_margin,
                                         hardest=cfg.tri_hardest,
                                         directions=cfg.awl_directions)
    mining, weighting = (v.mining, v.weighting) if kind == "awl" else (False, False)
    return lambda s, il, tl: awl(s, il, tl, rho=cfg.rho, mining=mining,
                                 weighting=weighting, directions=cfg.awl_directions)


FEATS = {"C": "global", "F": "patches", "S": "patches"}   # what each network's images are


def image_input(net, key: str, b: dict):
    """What ``net.encode_images`` takes from a batch: GAN the global features, LAN and a
    one-network method the patches, unless the network names its inputs (``image_inputs``:
    Liu et al.'s takes both the global features and the patches)."""
    names = getattr(net, "image_inputs", None)
    return b[FEATS[key]] if names is None else tuple(b[n] for n in names)


def build_model(cfg: HAANConfig, data: PairedData, device="cpu") -> HAAN:
    if cfg.method != "haan":   # a compared method: its own networks (haan_core.methods)
        from .methods import build_method
        return build_method(cfg, data, device)
    v = cfg.variant_spec
    if v.gcm and data.global_feats is None:
        raise HAANInputError(f"variant {cfg.variant} needs global image features, which "
                             f"dataset {data.name!r} does not have")
    if v.lcm and data.patch_feats is None:
        raise HAANInputError(
            f"variant {cfg.variant} needs patch features (the local network), which dataset "
            f"{data.name!r} does not have; only the global network can run on it: "
            "use --variant HAAN-GCM")
    if v.lcm and data.alpha != cfg.alpha:
        raise HAANInputError(f"the data has {data.alpha} patches per image but alpha is "
                             f"{cfg.alpha}: set --alpha {data.alpha} or re-extract features")
    return HAAN(data.feat_dim, len(data.vocab), word_dim=cfg.word_dim,
                embed_dim=cfg.embed_dim, lam=cfg.lam, use_gcm=v.gcm, use_lcm=v.lcm,
                patch_dim=data.patch_dim)


@torch.no_grad()
def evaluate(model: HAAN, data: PairedData, split: str, cfg: HAANConfig,
             device: torch.device, batch: int = 512) -> dict:
    """Similarity matrices of a split ({"C", "F", "fused"}, on the CPU) and their labels."""
    with exact_fp32():
        return _evaluate(model, data, split, cfg, device, batch)


def _evaluate(model, data, split, cfg, device, batch):
    model.eval()
    idx = data.splits[split]
    sims = {}
    for key, net in model.networks().items():
        imgs, txts = [], []
        with autocast(cfg, device):
            for s in range(0, len(idx), batch):
                b = data.batch(idx[s:s + batch], device)
                imgs.append(net.encode_images(image_input(net, key, b)))
                txts.append(net.encode_texts(b["tokens"], b["lengths"]))
            img = torch.cat(imgs)
            if isinstance(txts[0], torch.Tensor):   # one vector per text (GAN, Liu et al.)
                txt = torch.cat(txts)
            else:  # word tensors of chunks differ in length: pad to the longest
                width = max(w.shape[1] for w, _ in txts)
                txt = (torch.cat([torch.nn.functional.pad(w, (0, 0, 0, width - w.shape[1]))
                                  for w, _ in txts]), torch.cat([n for _, n in txts]))
            sim = net.similarity(img, txt, chunk_size=cfg.lcm_chunk)
        sims[key] = sim.float().cpu()
    sims["fused"] = fuse(sims.get("C"), sims.get("F"), cfg.upsilon1, cfg.upsilon2) \
        if "S" not in sims else sims["S"]   # a method with one network: its own matrix
    labels = data.labels[idx]
    model.train()
    return {"sims": sims, "img_labels": labels, "txt_labels": labels}


def scores_of(ev: dict, k=None) -> dict:
    return {key: retrieval_scores(s, ev["img_labels"], ev["txt_labels"], k)
            for key, s in ev["sims"].items()}


@dataclass
class TrainResult:
    config: dict
    test: dict            # {"i2t", "t2i", "avg"} of the fused matrix (eq. 7)
    test_by_module: dict  # {"C": {...}, "F": {...}, "fused": {...}}
    best_epoch: int
    val_history: list     # per epoch: {"epoch", "lr", "avg", ...}
    loss_history: list    # per iteration: {"iteration", "epoch", "C", "F"}
    train_seconds: float
    device: str
    provenance: dict
    test_eval: dict = field(repr=False, default=None)  # similarity matrices and labels
    model: HAAN = field(repr=False, default=None)

    def to_json(self) -> dict:
        return {"i2t": self.test["i2t"], "t2i": self.test["t2i"], "avg": self.test["avg"],
                "method": self.config.get("method", "haan"),
                "variant": self.config["variant"], "dataset": self.config["dataset"],
                "test_by_module": self.test_by_module, "best_epoch": self.best_epoch,
                "val_history": self.val_history, "loss_history": self.loss_history,
                "train_seconds": self.train_seconds, "device": self.device,
                "provenance": self.provenance}

    def save(self, path) -> None:
        write_json(path, self.to_json())


def train(cfg: HAANConfig, data: PairedData | None = None, log=None) -> TrainResult:
    """Train the variant ``cfg.variant`` and test its best validation snapshot."""
    with exact_fp32():   # on a GPU, fp32 is fp32: cuDNN's GRU not in TF32
        return _train(cfg, data, log)


def _train(cfg, data, log):
    cfg.validate()
    commit = git_commit()   # now, not at the end: later commits did not run
    gen = seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = data if data is not None else load_dataset(cfg)
    start = time.perf_counter()   # a method's own first stage (Liu et al.'s Framework I) counts
    model = build_model(cfg, data, device).to(device)
    # the networks trained by gradient (a closed-form method, CCA, has none: the loop only
    # validates and tests it)
    nets = {k: n for k, n in model.networks().items()
            if any(p.requires_grad for p in n.parameters())}
    # theta_C and theta_F are separate parameter sets with separate objectives
    # fused Adam: one kernel for all parameters (6x faster than the default on a CPU),
    # the same update rule
    fused = device.type in ("cpu", "cuda")
    opts = {k: torch.optim.Adam(n.parameters(), lr=cfg.lr, fused=fused)
            for k, n in nets.items()}
    loss_fn = make_loss(cfg)

    train_idx = data.splits["train"]
    if len(train_idx) < 2:
        raise HAANInputError("the train split needs at least 2 pairs")
    txt_labels = data.labels
    if cfg.shuffle_text_labels:  # control: texts get the labels of random other texts
        txt_labels = data.labels.clone()
        perm = torch.randperm(len(train_idx), generator=gen)
        txt_labels[train_idx] = data.labels[train_idx[perm]]

    loss_history, val_history = [], []
    best = (-1.0, -1, None)
    iteration = 0
    bar = tqdm(range(cfg.epochs), desc=f"{cfg.variant} on {data.name}",
               disable=None if cfg.progress else True, leave=False)  # None: only on a terminal
    for epoch in bar:
        lr = cfg.lr if epoch < cfg.decay_epoch else cfg.lr * cfg.lr_decay
        for opt in opts.values():
            for group in opt.param_groups:
                group["lr"] = lr
        if hasattr(loss_fn, "set_epoch"):   # a loss with a warm-up (methods.WarmupRanking)
            loss_fn.set_epoch(epoch)
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        epoch_records = []
        for s in range(0, len(order), cfg.batch_size):
            chunk = order[s:s + cfg.batch_size]
            if len(chunk) < 2:  # a last batch of one pair has no negative
                continue
            b = data.batch(chunk, device, txt_labels=txt_labels)
            record = {"iteration": iteration, "epoch": epoch}
            for key, net in nets.items():
                with autocast(cfg, device):
                    img = net.encode_images(image_input(net, key, b))
                    txt = net.encode_texts(b["tokens"], b["lengths"])
                    sim = net.similarity(img, txt)
                loss = loss_fn(sim.float(), b["img_labels"], b["txt_labels"])
                extra = getattr(net, "extra_loss", None)   # a method's own terms (Liu eq. 21)
                if extra is not None:
                    loss = loss + extra(img, txt, b["img_labels"], b["txt_labels"])
                opts[key].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opts[key].step()
                record[key] = loss.detach()   # read once an epoch: no host round trip here
            epoch_records.append(record)
            iteration += 1
        for record in epoch_records:
            loss_history.append({k: v if isinstance(v, int) else float(v)
                                 for k, v in record.items()})
        val = scores_of(evaluate(model, data, "val", cfg, device), cfg.eval_k)
        val_history.append({"epoch": epoch, "lr": lr, **val["fused"]})
        if val["fused"]["avg"] > best[0]:
            best = (val["fused"]["avg"], epoch, copy.deepcopy(model.state_dict()))
        bar.set_postfix(val_avg=f"{val['fused']['avg']:.3f}")
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.1e} val mAP {val['fused']['avg']:.4f}")
    train_seconds = time.perf_counter() - start

    model.load_state_dict(best[2])
    test_eval = evaluate(model, data, "test", cfg, device)
    test_scores = scores_of(test_eval, cfg.eval_k)
    prov = provenance(cfg.to_dict(), device, train_seconds, commit=commit)
    prov["data"] = data.summary()
    return TrainResult(config=cfg.to_dict(), test=test_scores["fused"],
                       test_by_module=test_scores, best_epoch=best[1],
                       val_history=val_history, loss_history=loss_history,
                       train_seconds=train_seconds, device=prov["device"], provenance=prov,
                       test_eval=test_eval, model=model)


def save_checkpoint(path, result: TrainResult) -> None:
    """The best snapshot's weights with its configuration, written atomically."""
    save_torch(path, {"config": result.config, "state_dict": result.model.state_dict(),
                      "provenance": result.provenance})
