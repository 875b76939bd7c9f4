"""Command line: ``python -m haan_core train|demo|query|methods|sweep ...``.

Every field of :class:`HAANConfig` is a flag (``--rho 0.4 --epochs 5``); flags left out
take the paper's value or the dataset's recipe. Bad input ends with a one-line error and
exit status 2, not a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from .config import HAANConfig
from .errors import HAANInputError
from .provenance import keep_freed_memory, write_json

DEMO_VARIANTS = ("HAAN-GCM", "HAAN-LCM", "HAAN")


def _optional(conv):
    def parse(text):
        return None if text.lower() == "none" else conv(text)
    parse.__name__ = conv.__name__
    return parse


def add_config_flags(parser: argparse.ArgumentParser, skip=()) -> None:
    """One flag per configuration field; defaults are left out so the recipe applies."""
    hints = typing.get_type_hints(HAANConfig)
    for f in dataclasses.fields(HAANConfig):
        if f.name in skip or f.name in ("extra", "method_options"):
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint)
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS)
        else:
            conv = _optional(base) if optional else base
            parser.add_argument(flag, dest=f.name, type=conv, default=argparse.SUPPRESS,
                                metavar=base.__name__.upper())
    if "method_options" not in skip:
        parser.add_argument("--method-option", dest="method_options", action="append",
                            type=method_option, default=argparse.SUPPRESS,
                            metavar="KEY=VALUE", help="an option of the compared method, "
                            "VALUE as JSON, e.g. margins=[7,7.5,8] (repeat for several)")


def method_option(text: str) -> tuple:
    """--method-option KEY=VALUE, VALUE read as JSON (a bare word stays a string)."""
    import json
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. margins=[7,7.5,8]), "
                                         f"got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def config_from_args(ns: argparse.Namespace, skip=("command",)) -> HAANConfig:
    values = {k: v for k, v in vars(ns).items() if k not in skip and k != "out"}
    if "method_options" in values:   # [(key, value), ...] from repeated --method-option
        values["method_options"] = dict(values["method_options"])
    dataset = values.pop("dataset", "synthetic")
    return HAANConfig.for_dataset(dataset, **values)


def parse_seeds(text: str | None):
    """--seeds "0,1,2" as [0, 1, 2] (None stays None)."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise HAANInputError(f"--seeds takes comma-separated integers like 0,1,2, "
                             f"got {text!r}") from None


def format_table(rows: list[dict], title: str) -> str:
    """Rows of {"method", "i2t", "t2i", "avg", ...} as a plain-text table."""
    lines = [title, f"{'method':<26}{'I2T':>8}{'T2I':>8}{'AVG':>8}{'train s':>9}"]
    for r in rows:
        secs = f"{r['train_seconds']:9.1f}" if r.get("train_seconds") is not None else " " * 9
        lines.append(f"{r['method']:<26}{r['i2t']:8.4f}{r['t2i']:8.4f}{r['avg']:8.4f}{secs}")
    return "\n".join(lines)


def cmd_train(ns) -> int:
    from .train import train
    cfg = config_from_args(ns)
    result = train(cfg)
    data_note = result.provenance["data"]
    kind = "SYNTHETIC data" if data_note["synthetic"] else "real data"
    label = cfg.variant if cfg.method == "haan" else cfg.method
    print(format_table([{"method": label, **result.test,
                         "train_seconds": result.train_seconds}],
                       f"Measured test mAP, {cfg.dataset} ({kind}), seed {cfg.seed}, "
                       f"{result.device}, best epoch {result.best_epoch + 1}/{cfg.epochs}"))
    if ns.out:
        result.save(ns.out)
        print(f"wrote {ns.out}")
    return 0


def cmd_demo(ns) -> int:
    from .metrics import chance_map
    from .train import train
    rows = []
    for variant in DEMO_VARIANTS:
        cfg = config_from_args(argparse.Namespace(**{**vars(ns), "variant": variant}))
        print(f"training {variant} ...", file=sys.stderr, flush=True)
        result = train(cfg)
        rows.append({"method": variant, **result.test, "train_seconds": result.train_seconds})
    labels = result.test_eval["img_labels"]
    chance = chance_map(labels, labels)
    rows.append({"method": "chance (random ranking)", "i2t": chance, "t2i": chance,
                 "avg": chance, "train_seconds": None})
    kind = "SYNTHETIC data" if result.provenance["data"]["synthetic"] else "real data"
    print(format_table(rows, f"Measured test mAP on {cfg.dataset} ({kind}), seed {cfg.seed}, "
                             f"{result.device}, commit {result.provenance['commit']}"))
    if cfg.dataset == "synthetic":
        print("Synthetic data: scene classes differ only globally, object classes only in "
              "patches;\nso GCM and LCM alone each separate half of the classes, and HAAN "
              "fuses both (eq. 7).")
    return 0


def cmd_data(ns) -> int:
    import json

    from .corpora import load_corpus
    if ns.data_command == "check":
        corpus = load_corpus(ns.name, ns.root, ns.val_test_split, ns.split_seed)
        print(json.dumps(corpus.summary(), indent=2, default=str))
        return 0
    if ns.data_command == "fetch":
        from .fetch import fetch
        manifest = fetch(ns.name, ns.root, url=ns.url, force=ns.force, progress=ns.progress)
        print(json.dumps(manifest, indent=2, default=str))
        return 0
    raise HAANInputError(f"unknown data command {ns.data_command!r}")


def cmd_measure(ns) -> int:
    from .measured import measure, path_of
    rec = measure(ns.name, ns.root, results_dir=ns.results_dir, device=ns.device)
    print(format_table([{"method": rec["label"], **{k: rec[k] for k in ("i2t", "t2i", "avg")},
                         "train_seconds": rec["train_seconds"]}],
                       f"MEASURED test mAP, {rec['dataset']}, {rec['device']}, best epoch "
                       f"{rec['best_epoch']}"))
    print(f"wrote {path_of(ns.name, ns.results_dir)}")
    return 0


def cmd_bench(ns) -> int:
    from .bench import main as bench
    from .bench import seed_spread
    if ns.seeds:
        r = seed_spread(parse_seeds(ns.seeds), device=ns.device)
        for x in r["runs"]:
            print(f"{x['precision']} seed {x['seed']}: test AVG mAP {x['avg']:.4f} "
                  f"({x['train_seconds']:.0f} s)")
        for p, v in r["summary"].items():
            print(f"{p}: mean {v['mean']:.4f}, sd {v['sd']:.4f} over {v['n']} seeds")
        if ns.out:
            write_json(ns.out, r)
            print(f"wrote {ns.out}")
        return 0
    methods = tuple(m.strip() for m in (ns.methods or "").split(",") if m.strip())
    from .bench import PAIRWISE
    bad = [m for m in methods if m not in PAIRWISE]
    if bad:
        raise HAANInputError(f"--methods takes the pairwise methods {', '.join(PAIRWISE)} "
                             f"(comma-separated); got {', '.join(bad)}")
    bench(quick=ns.quick, device=ns.device, out=ns.out, notebook=ns.notebook,
          methods=methods)
    return 0


def cmd_query(ns) -> int:
    from .query import search
    own = ("command", "text", "image", "top", "show", "cache_dir")
    config = {k: v for k, v in vars(ns).items() if k not in own}
    config.setdefault("progress", True)   # a first query trains: show its progress bar
    result = search(ns.text, image=ns.image, top=ns.top, cache_dir=ns.cache_dir, **config)
    print(result.report())
    if ns.show:
        result.save(ns.show)
        print(f"wrote {ns.show}")
    return 0


def cmd_methods(ns) -> int:
    from .methods import table
    print(table())
    return 0


def cmd_sweep(ns) -> int:
    from . import sweep as S
    grid, seeds = S.grid_named(ns.grid), parse_seeds(ns.seeds)
    if ns.list:
        print(S.status_table(grid, seeds, ns.results_dir))
        return 0
    if ns.root is None:
        raise HAANInputError(f"--root is needed: the {grid.dataset} folder (fetch it with "
                             f"`python -m haan_core data fetch {grid.dataset} --root DIR`)")
    slurm = {"folder": ns.slurm_logs, "timeout_min": ns.timeout_min,
             **({"slurm_partition": ns.partition} if ns.partition else {})}
    S.sweep(grid, root=ns.root, device=ns.device, workers=ns.workers, seeds=seeds,
            results_dir=ns.results_dir, executor=ns.executor, slurm=slurm)
    print(S.status_table(grid, seeds, ns.results_dir).splitlines()[-1])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m haan_core",
                                description="HAAN (Wang et al., Sensors 2023), runnable.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one variant and print its test mAP")
    add_config_flags(t)
    t.add_argument("--out", default=None, help="write the result JSON here (atomically)")
    d = sub.add_parser("demo", help=f"train {', '.join(DEMO_VARIANTS)} and print the table")
    add_config_flags(d, skip=("variant",))
    d.set_defaults(out=None)
    m = sub.add_parser("measure", help="regenerate a committed measured result "
                                       "(data/measured/NAME.json) with its configuration")
    m.add_argument("name", help="corel5k_haan, corel5k_haan_order_split or wiki_gcm_sift")
    m.add_argument("--root", required=True, help="the dataset's folder")
    m.add_argument("--device", default="auto")
    m.add_argument("--results-dir", default=None, help="default: data/measured")
    bn = sub.add_parser("bench", help="measure speed on this machine: a training epoch "
                                      "(fp32, bf16), lcm, mAP, each beside its reference")
    bn.add_argument("--device", default="auto")
    bn.add_argument("--out", default=None, help="also write the numbers as JSON (atomically)")
    bn.add_argument("--quick", action="store_true",
                    help="tiny sizes, for testing the command (not a speed measurement)")
    bn.add_argument("--notebook", default=None, help="also time one book notebook, e.g. awl")
    bn.add_argument("--methods", default=None,
                    help="also time one training step of these pairwise methods beside "
                         "HAAN's, at Corel shapes (e.g. shan,sgr,saf)")
    bn.add_argument("--seeds", default=None,
                    help="instead: test mAP of the synthetic default for these seeds "
                         "(e.g. 0,1,2) in fp32 and bf16, with mean and spread")
    q = sub.add_parser("query", help="rank the test images of a trained run by a text you "
                                     "type, or its test texts by an image file")
    q.add_argument("text", nargs="?", default=None, help='the query text, e.g. "sky water '
                   'beach" (or give --image)')
    q.add_argument("--image", default=None, help="rank the texts by this image file "
                   "(real datasets only, e.g. --dataset corel5k --backbone efficientnet_lite0)")
    q.add_argument("--top", type=int, default=10, help="how many results to show")
    q.add_argument("--show", default=None, metavar="FILE.png",
                   help="also draw the results (thumbnails on Corel 5K) into this file")
    q.add_argument("--cache-dir", default=None, help="where trained runs are cached "
                   "(default: runs/cache in the checkout, or $HAAN_CACHE_DIR)")
    add_config_flags(q)
    sub.add_parser("methods", help="list the methods --method selects, with their papers")
    sw = sub.add_parser("sweep", help="run a declared grid of real-data runs (table6, "
                                      "figure6); finished runs are kept and skipped")
    sw.add_argument("grid", help="table6, figure6, precision (HAAN in bf16), a compared method's name (liu, "
                    "shan, tshsr, cca, kcca, dcca, scan, sgr, saf, dscmr) or methods (all of "
                    "them), or several: table6,figure6")
    sw.add_argument("--root", default=None, help="the dataset's folder")
    sw.add_argument("--seeds", default=None, help="comma-separated, default 0,1,2")
    sw.add_argument("--device", default="auto")
    sw.add_argument("--workers", type=int, default=1,
                    help="local worker processes (one run each at a time)")
    sw.add_argument("--executor", default="processes", choices=("processes", "slurm", "local"),
                    help="processes: --workers local processes; slurm: one submitit job per "
                         "run on a Slurm cluster; local: submitit's local executor")
    sw.add_argument("--partition", default=None, help="Slurm partition (--executor slurm)")
    sw.add_argument("--timeout-min", type=int, default=120, help="per job (submitit)")
    sw.add_argument("--slurm-logs", default="submitit_logs", help="submitit's log folder")
    sw.add_argument("--results-dir", default=None, help="default: data/measured/runs")
    sw.add_argument("--list", action="store_true", help="only say which runs are done")
    data = sub.add_parser("data", help="the paper's datasets: fetch them, check a folder")
    dsub = data.add_subparsers(dest="data_command", required=True)
    chk = dsub.add_parser("check", help="print a JSON summary: pairs, classes, vocabulary, "
                                        "splits and the problems found")
    chk.add_argument("name", help="corel5k, pascal or wiki")
    chk.add_argument("--root", required=True, help="the dataset's folder")
    chk.add_argument("--val-test-split", default=None, choices=("stratified", "order"),
                     help="how the test list is cut into validation and test (Corel 5K, "
                          "Wiki); default: stratified")
    chk.add_argument("--split-seed", type=int, default=0)
    fet = dsub.add_parser("fetch", help="download a dataset from its public home, check "
                                        "it and extract it safely; resumes when run again")
    fet.add_argument("name", help="corel5k, pascal or wiki")
    fet.add_argument("--root", required=True, help="the folder to fetch into")
    fet.add_argument("--url", default=None, help="a mirror to use instead of the public home")
    fet.add_argument("--force", action="store_true", help="fetch again over a finished fetch")
    fet.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    keep_freed_memory()          # faster on a CPU, the same numbers (see its docstring)
    try:
        return {"train": cmd_train, "demo": cmd_demo, "data": cmd_data,
                "measure": cmd_measure, "bench": cmd_bench, "query": cmd_query,
                "sweep": cmd_sweep, "methods": cmd_methods}[ns.command](ns)
    except (HAANInputError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
