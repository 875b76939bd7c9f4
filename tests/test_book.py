"""The book: notebooks re-run with new parameters, and built pages load in a browser.

nbval itself validates the executed notebooks (book/notebooks/*.ipynb): `make test`
passes them to pytest with --nbval and tests/nbval_sanitize.cfg (what that compares and
what it cannot: tests/README.md).
"""
import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import jupytext
import nbformat
import pytest

from haan_core.book import NOTEBOOKS, NOTEBOOK_DIR, parse_parameters, run_notebook

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_every_notebook_starts_with_one_parameters_cell():
    for name in NOTEBOOKS:
        nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert tagged == [0], f"{name}: parameters cell at {tagged}, expected only the first"
        assert "import haan_core" in jupytext.writes(nb, "py:percent") or \
            "from haan_core" in jupytext.writes(nb, "py:percent")


def _sanitizers():
    """The (regex, replace) rules of tests/nbval_sanitize.cfg, as nbval reads them."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tests" / "nbval_sanitize.cfg")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def _sanitize(text):
    for rx, rep in _sanitizers():
        text = rx.sub(rep, text)
    return text


def test_nbval_compares_numbers_and_masks_only_what_varies():
    """Numbers the pages print survive sanitizing (so nbval compares them); commits,
    digests, timestamps and styler ids are masked."""
    numbers = "AVG 0.6523490075771093, loss 1234567890.5, 0.0403 and 4492812345678"
    assert _sanitize(numbers) == numbers
    assert _sanitize("0.6523490075771093") != _sanitize("0.6523490075771094")
    varying = ("commit acbd772af050ef4499f7f7fa64efd5db8a2a60d0 (acbd772af0), "
               "trained 2026-11-24T16:41:35+00:00, <table id=\"T_3f9a1\">")
    assert _sanitize(varying) == ("commit HEX (HEX), trained TIME, <table id=\"T_UUID\">")


def test_parameters_are_read_as_yaml(tmp_path):
    f = tmp_path / "p.yml"
    f.write_text("seed: 1\nepochs: 4\n")
    params = parse_parameters([("seed", "3"), ("rhos", "[0.2, 0.4]"), ("root", "null")], [f])
    assert params == {"seed": 3, "epochs": 4, "rhos": [0.2, 0.4], "root": None}


def _outputs(nb):
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(text)


def test_table3_reexecutes_with_new_parameters(tmp_path):
    """papermill re-runs Table 3 with other parameters; its tables reflect them."""
    params = {"seed": 3, "epochs": 2, "variants": ["HAAN-GCM", "HAAN"], "methods": ["liu"],
              "cache_dir": str(tmp_path / "cache")}
    out = run_notebook("table3", params, out_dir=tmp_path, log=lambda *_: None)
    nb = nbformat.read(out, as_version=4)
    # the source is recorded by its path, not embedded (it holds the solutions)
    assert nb.metadata["papermill"]["input_path"] == "notebooks/table3.py"
    text = _outputs(nb)
    assert "seed 3, 2 epochs" in text                      # the caption of the measured table
    assert "HAAN-GCM" in text and "HAAN-LCM-AWL" not in text   # only the variants asked for
    assert "Liu et al." in text                              # and the compared method
    # provenance rows: one per run, with the seed and epochs asked for
    runs = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/result.json")]
    assert sorted((r["method"], r["variant"]) for r in runs) == [
        ("haan", "HAAN"), ("haan", "HAAN-GCM"), ("liu", "HAAN")]
    assert all(r["provenance"]["seed"] == 3 and len(r["val_history"]) == 2 for r in runs)
    # the glued prose number is the measured HAAN AVG of this run
    glued = [o for c in nb.cells for o in c.get("outputs", [])
             if "t3_haan_avg" in json.dumps(o.get("metadata", {}))]
    haan = next(r for r in runs if (r["method"], r["variant"]) == ("haan", "HAAN"))
    assert glued and f"{haan['avg']}"[:6] in json.dumps(glued[0]["data"])


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.skip("the book is not built: run `make book`")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


HARNESS = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="f" src="{page}" style="width:1200px;height:900px"></iframe>
<script>
function check(tries) {{
  var d = document.getElementById('f').contentDocument;
  var math = d ? d.querySelectorAll('mjx-container').length : 0;
  var imgs = d ? Array.from(d.querySelectorAll('img')) : [];
  var ready = d && d.readyState === 'complete' && imgs.every(i => i.complete);
  if ((ready && (math > 0 || tries > 40)) || tries > 80) {{
    document.getElementById('result').textContent = JSON.stringify({{
      math: math,
      mathErrors: d ? d.querySelectorAll('mjx-merror').length : -1,
      images: imgs.length,
      loaded: imgs.filter(i => i.naturalWidth > 0).length,
      exercises: d ? d.querySelectorAll('.exercise').length : -1,
      solutions: d ? d.querySelectorAll('.solution').length : -1,
      folded: d ? Array.from(d.querySelectorAll('.solution')).filter(s =>
        s.classList.contains('toggle-hidden') &&
        Array.from(s.children).filter(c => !c.classList.contains('admonition-title'))
          .every(c => c.offsetHeight === 0)).length : -1,
      title: d ? d.title : ''}});
  }} else {{ setTimeout(function () {{ check(tries + 1); }}, 250); }}
}}
window.onload = function () {{ check(0); }};
</script></body></html>"""


def _inspect(server, page, tmp_path):
    harness = HTML / f"_harness_{page.replace('/', '_')}.html"
    harness.write_text(HARNESS.format(page="/" + page))
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'profile'}",
             # no network: every request that is not to this machine goes to a dead proxy
             "--proxy-server=http://127.0.0.1:9", "--virtual-time-budget=30000",
             "--dump-dom", f"{server}/{harness.name}"],
            capture_output=True, text=True, timeout=120)
    finally:
        harness.unlink()
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m and m.group(1) != "pending", proc.stderr[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: apt-get install chromium")
@pytest.mark.parametrize("page,min_math,min_images", [
    ("book/notebooks/gcm_lcm.html", 5, 2),
    ("book/notebooks/awl.html", 5, 2),
    ("book/notebooks/figure5.html", 0, 1),
    ("book/notebooks/figure7.html", 1, 1),
    ("book/intro.html", 2, 0),
    ("book/notebooks/data_features.html", 2, 0),
])
def test_pages_render_math_and_figures_offline(server, page, min_math, min_images, tmp_path):
    got = _inspect(server, page, tmp_path)
    assert got["math"] >= min_math, got
    assert got["mathErrors"] == 0, got
    assert got["images"] >= min_images and got["loaded"] == got["images"], got
    assert "HAAN" in got["title"], got


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: apt-get install chromium")
@pytest.mark.parametrize("page", ["book/notebooks/gcm_lcm.html", "book/notebooks/table3.html",
                                  "book/notebooks/figure8.html"])
def test_solutions_are_folded_in_the_browser(server, page, tmp_path):
    """Each exercise's solution is on the page but folded until the reader opens it."""
    got = _inspect(server, page, tmp_path)
    assert got["exercises"] >= 2, got
    assert got["solutions"] == got["exercises"] and got["folded"] == got["solutions"], got


# ---------------------------------------------------------------- built HTML, read as text

EXERCISE_PAGES = ["data_features", "gcm_lcm", "awl", "table3", "table4", "table5_6",
                  "figure5", "figure6", "figure7", "figure8", "figure9"]


def _html(rel):
    path = HTML / rel
    if not path.exists():
        pytest.skip("the book is not built: run `make book`")
    return path.read_text()


@pytest.mark.parametrize("name", EXERCISE_PAGES)
def test_built_pages_have_exercises_with_dropdown_solutions(name):
    html = _html(f"book/notebooks/{name}.html")
    exercises = len(re.findall(r'class="[^"]*\bexercise\b[^"]*admonition', html))
    solutions = re.findall(r'class="([^"]*\bsolution\b[^"]*)"', html)
    solutions = [c for c in solutions if "admonition" in c]
    assert 2 <= exercises <= 3, f"{name}: {exercises} exercises"
    assert len(solutions) == exercises and all("dropdown" in c for c in solutions), solutions


def test_references_page_lists_every_entry_and_pages_link_to_it():
    import pybtex.database
    entries = pybtex.database.parse_file(ROOT / "book" / "references.bib").entries
    refs = _html("book/references.html")
    assert len(re.findall(r'<div class="citation" id=', refs)) == len(entries)
    assert "hierarchical adaptive alignment network" in refs.lower() and "Duygulu" in refs
    table3 = _html("book/notebooks/table3.html")
    assert len(re.findall(r'href="\.\./references\.html#', table3)) >= 12   # HAAN + 11


def test_no_button_points_to_a_home_that_does_not_exist_and_pages_can_be_downloaded():
    for path in HTML.rglob("*.html"):
        if "_static" in path.parts or path.name.startswith("_harness"):
            continue
        html = path.read_text()
        for dead in ("mybinder.org", "colab.research.google.com", "haan-companion",
                     "github.com/executablebooks/jupyter-book"):
            assert dead not in html, f"{path.relative_to(HTML)} links to {dead}"
    for name in EXERCISE_PAGES:
        html = _html(f"book/notebooks/{name}.html")
        assert f"_sources/book/notebooks/{name}.ipynb" in html, f"{name}: no .ipynb download"
