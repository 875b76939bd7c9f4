"""Run the book's notebooks through papermill, and build the book.

    python -m haan_core.book list
    python -m haan_core.book run                      # every notebook, default parameters
    python -m haan_core.book run table3 -p seed 3 -p epochs 10
    python -m haan_core.book run table3 -f notebooks/params/corel5k.yml
    python -m haan_core.book build                    # HTML from what was run

Notebooks are jupytext text files in notebooks/ (py:percent); each starts with one cell
tagged "parameters". ``run`` reads one with jupytext, lets papermill inject the parameters
and execute it, and writes the executed .ipynb into book/notebooks/, the folder the book
reads. A notebook whose source, parameters and haan_core code are unchanged since its
last run is skipped (``--force`` runs it anyway), so a rebuild with nothing changed is quick.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .provenance import PACKAGE_DIR, atomic_write

REPO = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO / "notebooks"
OUT_DIR = REPO / "book" / "notebooks"
# the order of the paper; notebooks that train come first so later ones find the cache
NOTEBOOKS = ["data_features", "gcm_lcm", "awl", "table3", "table4", "table5_6", "figure5", "figure6",
             "figure7", "figure8", "figure9", "reproducibility"]


def _need_checkout():
    if not NOTEBOOK_DIR.is_dir():
        raise FileNotFoundError(
            f"no notebooks/ folder next to haan_core ({REPO}): the book runner works in a "
            "clone of the repository")


def parse_parameters(pairs=(), files=()) -> dict:
    """-f YAML files first, then -p NAME VALUE pairs; values are read as YAML
    ("3" -> 3, "[0.2, 0.4]" -> a list, "null" -> None)."""
    params = {}
    for f in files:
        loaded = yaml.safe_load(Path(f).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{f} must hold a mapping of parameter names to values")
        params.update(loaded)
    for name, value in pairs:
        params[name] = yaml.safe_load(value)
    return params


def _stamp(name: str, params: dict) -> str:
    from .runs import code_hash
    src = (NOTEBOOK_DIR / f"{name}.py").read_bytes()
    # what a notebook reads besides its parameters: the data folder and committed results
    measured = hashlib.sha256(b"".join(p.read_bytes() for p in
                                       sorted((REPO / "data" / "measured").glob("*.json"))))
    blob = json.dumps({"src": hashlib.sha256(src).hexdigest(), "params": params,
                       "code": code_hash(),
                       # only pages that look for the datasets depend on where they are
                       "HAAN_DATA": os.environ.get("HAAN_DATA")
                       if b"default_root" in src else None,
                       "measured": measured.hexdigest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_notebook(name: str, parameters: dict | None = None, force: bool = False,
                 out_dir: Path = OUT_DIR, log=print) -> Path:
    """Execute notebooks/<name>.py with papermill into <out_dir>/<name>.ipynb."""
    import jupytext
    import papermill

    _need_checkout()
    src = NOTEBOOK_DIR / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"no notebook {name!r}: choose from {NOTEBOOKS}")
    parameters = dict(parameters or {})
    out = Path(out_dir) / f"{name}.ipynb"
    stamp_file = Path(out_dir) / ".stamps" / f"{name}.json"
    stamp = _stamp(name, parameters)
    if not force and out.exists() and stamp_file.exists() \
            and json.loads(stamp_file.read_text()).get("stamp") == stamp:
        log(f"{name}: unchanged, not re-run")
        return out
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    start = time.perf_counter()
    log(f"{name}: running" + (f" with {parameters}" if parameters else ""))
    executed = papermill.execute_notebook(nb, None, parameters=parameters,
                                          cwd=str(REPO), kernel_name="python3",
                                          progress_bar=False, log_output=False)
    import nbformat
    atomic_write(out, lambda tmp: nbformat.write(executed, tmp))
    atomic_write(stamp_file, lambda tmp: Path(tmp).write_text(json.dumps(
        {"stamp": stamp, "parameters": parameters}, default=str)))
    shown = out.relative_to(REPO) if out.resolve().is_relative_to(REPO) else out
    log(f"{name}: done in {time.perf_counter() - start:.0f} s -> {shown}")
    return out


MATHJAX_VERSION = "3.2.2"
MATHJAX_NPM = REPO / ".tools" / "node_modules" / "mathjax"
MATHJAX_STATIC = REPO / "book" / "_static" / "mathjax"


def prepare_mathjax() -> None:
    """Copy MathJax (npm mathjax@3) into the book's static files: math renders offline."""
    if (MATHJAX_STATIC / "tex-chtml.js").exists():
        return
    source = MATHJAX_NPM / "es5"
    if not (source / "tex-chtml.js").exists():
        raise FileNotFoundError(
            f"MathJax is not installed: run `npm install --prefix .tools mathjax@{MATHJAX_VERSION}`"
            " (or `make book`, which does it)")
    tmp = MATHJAX_STATIC.with_name(".mathjax.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    os.replace(tmp, MATHJAX_STATIC)


def build(warnings_as_errors: bool = True) -> Path:
    """jupyter-book build of the repository root; returns the HTML index."""
    missing = [n for n in NOTEBOOKS if not (OUT_DIR / f"{n}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"notebooks not executed yet: {missing}; run "
                                "`python -m haan_core.book run` first")
    prepare_mathjax()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO)]
    if warnings_as_errors:
        cmd += ["-W", "--keep-going"]
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise RuntimeError("jupyter-book build failed (warnings count as errors): "
                           "see the messages above")
    return REPO / "_build" / "html" / "index.html"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m haan_core.book", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the notebooks, in book order")
    r = sub.add_parser("run", help="execute notebooks with papermill")
    r.add_argument("names", nargs="*", help=f"default: all of {NOTEBOOKS}")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="override a parameter (YAML value)")
    r.add_argument("-f", "--parameters-file", action="append", default=[],
                   help="a YAML file of parameters, e.g. notebooks/params/corel5k.yml")
    r.add_argument("--force", action="store_true", help="run even if unchanged")
    b = sub.add_parser("build", help="build the HTML book from the executed notebooks")
    b.add_argument("--allow-warnings", action="store_true")
    ns = p.parse_args(argv)
    try:
        if ns.command == "list":
            print("\n".join(NOTEBOOKS))
        elif ns.command == "run":
            params = parse_parameters(ns.parameter, ns.parameters_file)
            for name in ns.names or NOTEBOOKS:
                run_notebook(name, params, force=ns.force)
        else:
            index = build(not ns.allow_warnings)
            print(f"The book is at {index}")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
