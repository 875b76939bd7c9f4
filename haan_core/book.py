"""Run the book's notebooks through papermill, and build the book.

    python -m haan_core.book list
    python -m haan_core.book run                      # every notebook, default parameters
    python -m haan_core.book run table3 -p seed 3 -p epochs 10
    python -m haan_core.book run table3 -f notebooks/params/corel5k.yml
    python -m haan_core.book build                    # HTML from what was run
    python -m haan_core.book student handout/         # notebooks without the solutions
    python -m haan_core.book lab                      # Jupyter Lab on the notebooks (make lab)
    python -m haan_core.book keep                     # keep the slow runs of the last build

Notebooks are jupytext text files in notebooks/ (py:percent); each starts with one cell
tagged "parameters". ``run`` reads one with jupytext, lets papermill inject the parameters
and execute it, and writes the executed .ipynb into book/notebooks/, the folder the book
reads. A notebook whose source, parameters and haan_core code are unchanged since its
last run is skipped (``--force`` runs it anyway), so a rebuild with nothing changed is quick.

Parameters are checked before any cell runs: a name the notebook does not declare, or a
value whose type differs from the parameters cell's default (for a default of None, from
the type its comment names: ``# int or None: ...``), is an error, and the last good
executed page is left as it was. So is a notebook that fails part-way: the runner prints
the failing cell and the error in a few lines.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

import yaml

from .provenance import PACKAGE_DIR, atomic_write

REPO = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO / "notebooks"
OUT_DIR = REPO / "book" / "notebooks"
# the order of the paper; notebooks that train come first so later ones find the cache
NOTEBOOKS = ["data_features", "gcm_lcm", "awl", "table3", "table4", "table5_6", "figure5", "figure6",
             "figure7", "figure8", "figure9", "reproducibility", "course"]


def _need_checkout():
    if not NOTEBOOK_DIR.is_dir():
        raise FileNotFoundError(
            f"no notebooks/ folder next to haan_core ({REPO}): the book runner works in a "
            "clone of the repository")


def parse_parameters(pairs=(), files=()) -> dict:
    """-f YAML files first, then -p NAME VALUE pairs; values are read as YAML
    ("3" -> 3, "[0.2, 0.4]" -> a list, "null" -> None); a -p value that is not valid YAML
    stays the text as typed."""
    params = {}
    for f in files:
        try:
            loaded = yaml.safe_load(Path(f).read_text()) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"parameters file {f} does not exist") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{f} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{f} must hold a mapping of parameter names to values")
        params.update(loaded)
    for name, value in pairs:
        try:
            params[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            params[name] = value
    return params


@dataclass
class Parameter:
    """One assignment of a notebook's parameters cell."""
    name: str
    default: object
    kind: str           # bool | int | float | str | list | dict | any
    optional: bool      # None is allowed (the default is None)
    comment: str


_KINDS = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
_NAMED = ("bool", "int", "float", "str", "list", "dict")


def notebook_parameters(name: str) -> dict:
    """The parameters cell of notebooks/<name>.py as {name: Parameter}, in order.

    The kind of a parameter is its default's type; a default of None takes the type its
    comment starts with (``root = None  # str or None: ...``), else any value is allowed."""
    import jupytext
    _need_checkout()
    src = NOTEBOOK_DIR / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"no notebook {name!r}: choose from {NOTEBOOKS}")
    nb = jupytext.read(src)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ValueError(f"notebooks/{name}.py has no cell tagged 'parameters'")
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline):
        if tok.type == tokenize.COMMENT:
            comments.setdefault(tok.start[0], tok.string.lstrip("#").strip())
    params = {}
    for node in ast.parse(cell.source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"notebooks/{name}.py: the parameters cell may hold only "
                             f"`name = value` lines (line {node.lineno})")
        default = ast.literal_eval(node.value)
        comment = next((comments[i] for i in range(node.lineno, node.end_lineno + 1)
                        if i in comments), "")
        if default is None:
            word = comment.split(" ", 1)[0]
            kind = word if word in _NAMED and comment.startswith(f"{word} or None") else "any"
        else:
            kind = _KINDS.get(type(default), "any")
        params[node.targets[0].id] = Parameter(node.targets[0].id, default, kind,
                                               default is None, comment)
    return params


def _type_error(p: Parameter, value):
    """Why ``value`` does not fit ``p``; None when it fits."""
    if value is None:
        return None if p.optional else f"must not be null (its default is {p.default!r})"
    if p.kind == "any":
        return None
    ok = {"bool": lambda v: isinstance(v, bool),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "str": lambda v: isinstance(v, str),
          "list": lambda v: isinstance(v, list),
          "dict": lambda v: isinstance(v, dict)}[p.kind]
    if ok(value):
        if p.kind == "list" and isinstance(p.default, list) and p.default:
            kinds = {_KINDS.get(type(x)) for x in p.default}
            if len(kinds) == 1:
                inner = Parameter(p.name, p.default[0], kinds.pop(), False, "")
                bad = [x for x in value if _type_error(inner, x)]
                if bad:
                    return (f"must be a list of {inner.kind} values like {p.default!r}; "
                            f"{bad[0]!r} is not")
        return None
    default = f"its default is {p.default!r}" + (f" ({p.comment})" if p.comment else "")
    return f"must be {'an' if p.kind == 'int' else 'a'} {p.kind}{' or null' if p.optional else ''}" \
           f" ({default}), got {value!r} (a {type(value).__name__})"


def check_parameters(names, params: dict, typed: dict | None = None) -> dict:
    """{notebook: the parameters it gets}, after checking ``params`` against the
    notebooks' parameters cells. Raises ValueError listing every problem: a name no
    notebook declares (with the closest declared name), a value of the wrong type.

    ``typed``: {name: the text typed after -p}; a text parameter given a value YAML reads
    as a number or a boolean (``-p root 2024``) takes that text instead."""
    typed = typed or {}
    declared = {n: notebook_parameters(n) for n in names}
    problems = []
    for pname in params:
        if not any(pname in d for d in declared.values()):
            known = sorted({k for d in declared.values() for k in d})
            close = difflib.get_close_matches(pname, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = names[0] if len(names) == 1 else f"any of {', '.join(names)}"
            problems.append(f"{pname!r} is not a parameter of {where}{hint}; "
                            f"the parameters are: {', '.join(known)}")
    per_notebook, wrong = {}, {}
    for n, decl in declared.items():
        mine = {}
        for pname, value in params.items():
            if pname not in decl:
                continue
            if decl[pname].kind == "str" and pname in typed \
                    and isinstance(value, (int, float, bool)):
                value = typed[pname]
            why = _type_error(decl[pname], value)
            if why:
                wrong.setdefault(f"parameter {pname!r} {why}", []).append(n)
            mine[pname] = value
        per_notebook[n] = mine
    problems += [f"{', '.join(ns)}: {why}" for why, ns in wrong.items()]
    if problems:
        raise ValueError("bad parameters, nothing was run:\n  " + "\n  ".join(problems))
    return per_notebook


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
    try:
        executed = papermill.execute_notebook(nb, None, parameters=parameters,
                                              cwd=str(REPO), kernel_name="python3",
                                              progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as e:
        raise NotebookFailed(name, e, out) from None
    import nbformat
    # papermill records its input; given a notebook object it stores the whole source
    # notebook there (solutions included): record the source file's path instead
    executed.metadata.setdefault("papermill", {})["input_path"] = f"notebooks/{name}.py"
    atomic_write(out, lambda tmp: nbformat.write(executed, tmp))
    seconds = time.perf_counter() - start
    atomic_write(stamp_file, lambda tmp: Path(tmp).write_text(json.dumps(
        {"stamp": stamp, "parameters": parameters, "seconds": round(seconds, 1),
         "cpu_count": os.cpu_count(),
         "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, default=str)))
    shown = out.relative_to(REPO) if out.resolve().is_relative_to(REPO) else out
    log(f"{name}: done in {seconds:.0f} s -> {shown}")
    return out


def notebook_times(out_dir: Path = OUT_DIR, names=None) -> dict:
    """How long each page's last execution took, from the runner's stamps, with where
    it ran: {"notebooks": {name: seconds}, "commit", "device", ...}. A page skipped as
    unchanged keeps the time of the run that made it."""
    import torch
    from .provenance import device_description, git_commit
    names = list(names or NOTEBOOKS)
    stamps = {n: json.loads((Path(out_dir) / ".stamps" / f"{n}.json").read_text())
              for n in names if (Path(out_dir) / ".stamps" / f"{n}.json").exists()}
    missing = [n for n in names if n not in stamps or "seconds" not in stamps[n]]
    if missing:
        raise FileNotFoundError(f"no execution time recorded for {missing}: run "
                                f"`python -m haan_core.book run --force {' '.join(missing)}`")
    return {"what": "seconds to execute each book page with default parameters "
                    "(python -m haan_core.book run), trained runs not cached beforehand "
                    "(the runs kept in data/measured/book_runs are read, not trained)",
            "notebooks": {n: stamps[n]["seconds"] for n in names},
            "parameters": {n: stamps[n]["parameters"] for n in names},
            **git_commit(), "device": device_description(torch.device("cpu")),
            "time_utc": max(stamps[n].get("time_utc", "") for n in names)}


class NotebookFailed(RuntimeError):
    """A cell raised: the message names the cell, its first lines and the error."""

    def __init__(self, name, err, out: Path):
        lines = [ln for ln in (err.source or "").splitlines() if ln.strip()][:3]
        kept = (f"the last good page {out.relative_to(REPO)} is left as it was"
                if out.exists() and out.resolve().is_relative_to(REPO) else
                f"{out.name} was not written")
        evalue = str(err.evalue).strip().splitlines()
        super().__init__(
            f"{name}: cell {err.cell_index} (execution count {err.exec_count}) failed:\n"
            + "".join(f"    | {ln}\n" for ln in lines)
            + f"  {err.ename}: {evalue[0] if evalue else ''}\n  {kept}")


def _student_cells(nb):
    """``nb`` without the cells tagged "solution"; an untagged solution is an error."""
    kept = [c for c in nb.cells if "solution" not in c.metadata.get("tags", [])]
    papermill = nb.metadata.get("papermill", {})
    if not isinstance(papermill.get("input_path", ""), (str, type(None))):
        papermill["input_path"] = None      # a whole notebook, solutions included
    for c in kept:
        if "{solution}" in c.source:
            raise ValueError("a {solution} directive outside a cell tagged 'solution': "
                             "tag that cell so `student` can remove it")
    nb.cells = kept
    return nb


def write_student(out_dir, names=None, clear_outputs=False, log=print) -> list:
    """The book's notebooks for students: every cell tagged "solution" removed.

    Executed pages (book/notebooks/*.ipynb) are taken when they exist, with their
    outputs unless ``clear_outputs``; a notebook not executed yet comes from its source,
    without outputs. Each .ipynb is written atomically into ``out_dir``."""
    import jupytext
    import nbformat
    _need_checkout()
    out_dir = Path(out_dir)
    if out_dir.resolve() == OUT_DIR.resolve():
        raise ValueError(f"{out_dir} is where the book's executed pages live: "
                         "choose another folder for the student notebooks")
    written = []
    for name in names or NOTEBOOKS:
        executed = OUT_DIR / f"{name}.ipynb"
        if executed.exists():
            nb = nbformat.read(executed, as_version=4)
            origin = "executed page"
        else:
            nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
            origin = "source, not executed"
        nb = _student_cells(nb)
        if clear_outputs:
            for c in nb.cells:
                if c.cell_type == "code":
                    c.outputs, c.execution_count = [], None
        dest = out_dir / f"{name}.ipynb"
        atomic_write(dest, lambda tmp: nbformat.write(nb, tmp))
        log(f"{name}: {origin}" + (", outputs cleared" if clear_outputs else "") + f" -> {dest}")
        written.append(dest)
    return written


# JupyterLab settings: a double-click opens a .py page as a notebook through jupytext's
# "Jupytext Notebook" viewer (jupytext >= 1.16 ships it). Written into the environment's own
# settings folder (sys.prefix), so no user-wide Jupyter setting is touched.
LAB_OVERRIDES = {"@jupyterlab/docmanager-extension:plugin":
                 {"defaultViewers": {"python": "Jupytext Notebook"}}}


def write_lab_settings(prefix=None) -> Path:
    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(LAB_OVERRIDES)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(current, indent=1)))
    return path


def lab_command(port=8888, token=None, open_browser=True, app="lab") -> list:
    """The command line that serves the checkout: ``app`` is "lab" (Jupyter Lab) or
    "server" (the bare Jupyter server, which the test asks through its REST API)."""
    cmd = [str(Path(sys.executable).with_name("jupyter")), app, f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={REPO}"]
    if app == "lab":
        cmd.append("--LabApp.default_url=/lab/tree/notebooks")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")      # containers often run as root; Jupyter refuses it
    return cmd


def lab(port=8888, open_browser=True) -> int:
    _need_checkout()
    write_lab_settings()
    print("Jupyter Lab on this checkout, kernel: this environment's Python "
          f"({Path(sys.executable).parent.parent.name}).\n"
          "  In the file browser, open notebooks/ and double-click a page (e.g. gcm_lcm.py):\n"
          "  it opens as a notebook (jupytext). Run > Run All Cells runs it; its first cell\n"
          "  holds the parameters. Saving writes the .py file back. Ctrl-C here stops the server.\n"
          "  The address to open (with its token) is printed below.", flush=True)
    return subprocess.run(lab_command(port, open_browser=open_browser), cwd=REPO).returncode


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
    st = sub.add_parser("student", help="write the notebooks without their solutions")
    st.add_argument("out_dir", help="folder for the student .ipynb files")
    st.add_argument("names", nargs="*", help=f"default: all of {NOTEBOOKS}")
    st.add_argument("--clear-outputs", action="store_true",
                    help="drop the executed outputs (default: keep them)")
    t = sub.add_parser("times", help="how long each page's last execution took")
    t.add_argument("--out", help="also write them as JSON (e.g. data/bench/notebook_times.json)")
    lb = sub.add_parser("lab", help="Jupyter Lab on the notebooks, .py pages open as notebooks")
    lb.add_argument("--port", type=int, default=8888)
    lb.add_argument("--no-browser", action="store_true")
    k = sub.add_parser("keep", help="keep the slow synthetic runs of the cache under "
                       "data/measured/book_runs, for the default build (after `make book` "
                       "from an empty cache); remove those other code made")
    k.add_argument("--cache-dir", default=None, help="default: runs/cache in the checkout")
    k.add_argument("--min-seconds", type=float, default=None,
                   help="keep runs that took this long or longer to train (default 10)")
    b = sub.add_parser("build", help="build the HTML book from the executed notebooks")
    b.add_argument("--allow-warnings", action="store_true")
    ns = p.parse_args(argv)
    try:
        if ns.command == "list":
            print("\n".join(NOTEBOOKS))
        elif ns.command == "run":
            names = ns.names or NOTEBOOKS
            unknown = [n for n in names if n not in NOTEBOOKS]
            if unknown:
                raise ValueError(f"no notebook {unknown[0]!r}: choose from {NOTEBOOKS}")
            params = parse_parameters(ns.parameter, ns.parameters_file)
            per_notebook = check_parameters(names, params, typed=dict(ns.parameter))
            for name in names:
                run_notebook(name, per_notebook[name], force=ns.force)
        elif ns.command == "student":
            unknown = [n for n in ns.names if n not in NOTEBOOKS]
            if unknown:
                raise ValueError(f"no notebook {unknown[0]!r}: choose from {NOTEBOOKS}")
            write_student(ns.out_dir, ns.names, ns.clear_outputs)
        elif ns.command == "times":
            times = notebook_times()
            for n, sec in times["notebooks"].items():
                print(f"{n:<16}{sec:8.1f} s")
            print(f"{'total':<16}{sum(times['notebooks'].values()):8.1f} s on {times['device']}")
            if ns.out:
                atomic_write(ns.out, lambda tmp: Path(tmp).write_text(
                    json.dumps(times, indent=1) + "\n"))
                print(f"wrote {ns.out}")
        elif ns.command == "keep":
            from .experiments import KEEP_MIN_SECONDS, keep_runs
            out = keep_runs(ns.cache_dir, min_seconds=KEEP_MIN_SECONDS
                            if ns.min_seconds is None else ns.min_seconds)
            print(f"{len(out['kept'])} runs kept, {len(out['removed'])} removed "
                  "(data/measured/book_runs); commit them with the code that made them")
        elif ns.command == "lab":
            return lab(ns.port, not ns.no_browser)
        else:
            index = build(not ns.allow_warnings)
            print(f"The book is at {index}")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
