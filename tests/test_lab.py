"""`make lab`: the real Jupyter server, started on loopback as `python -m haan_core.book lab`
starts it, serves a jupytext page of notebooks/ as a notebook through its REST API."""
from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from haan_core.book import LAB_OVERRIDES, REPO, lab_command, write_lab_settings

pytest.importorskip("jupyter_server")
pytest.importorskip("jupyterlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def server():
    port, token = _free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(lab_command(port, token=token, open_browser=False),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("jupyter lab exited: " + proc.stderr.read().decode()[-2000:])
            try:
                _get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError("jupyter lab did not answer within 120 s")
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_jupytext_page_comes_back_as_a_notebook_with_parameters_first(server):
    base, token = server
    model = _get(f"{base}/api/contents/notebooks/table3.py?type=notebook&content=1", token)
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    assert "parameters" in cells[0]["metadata"].get("tags", [])
    assert "seed = 0" in "".join(cells[0]["source"])
    assert any(c["cell_type"] == "markdown" and "Table 3" in "".join(c["source"]) for c in cells)


def test_the_server_runs_on_this_environments_kernel(server):
    """The server is this environment's jupyter, and its python3 kernel is the native one,
    which Jupyter starts with the server's own interpreter (the project's .venv)."""
    base, token = server
    assert Path(lab_command()[0]).parent == Path(sys.executable).parent
    specs = _get(f"{base}/api/kernelspecs", token)
    assert specs["default"] == "python3"
    assert specs["kernelspecs"]["python3"]["spec"]["argv"][0] in ("python", sys.executable)


def test_the_server_refuses_a_request_without_the_token(server):
    base, _ = server
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{base}/api/contents/notebooks", timeout=30)
    assert info.value.code in (401, 403)


def test_lab_settings_make_py_pages_open_as_notebooks(tmp_path):
    path = write_lab_settings(tmp_path)
    other = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    path.write_text(json.dumps(other))
    write_lab_settings(tmp_path)                    # keeps settings it does not own
    written = json.loads(path.read_text())
    assert written == {**other, **LAB_OVERRIDES}
    viewers = written["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"
