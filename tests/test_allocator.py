"""provenance.keep_freed_memory: the command line's allocator setting changes speed only.

Its speed is measured (see its docstring and the README), never
asserted here; these tests check that it is applied where it can be, that it can be turned
off, and that a run gives the same numbers, bit for bit, with it and without it."""
import json
import os
import platform
import subprocess
import sys

import pytest

from haan_core.provenance import keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_it_is_applied_on_linux_with_glibc(monkeypatch):
    monkeypatch.delenv("HAAN_KEEP_FREED_MEMORY", raising=False)
    assert keep_freed_memory() is True


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv("HAAN_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


def _train(tmp_path, keep: str) -> dict:
    out = tmp_path / f"keep{keep}.json"
    env = {**os.environ, "HAAN_KEEP_FREED_MEMORY": keep, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "haan_core", "train", "--method", "shan",
                           "--seed", "3", "--epochs", "1", "--embed-dim", "48",
                           "--word-dim", "16", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_a_run_gives_the_same_numbers_with_and_without_it(tmp_path):
    """SHAN frees and allocates large tensors at every step, where the setting acts."""
    on, off = _train(tmp_path, "1"), _train(tmp_path, "0")
    for key in ("i2t", "t2i", "avg", "best_epoch", "val_history", "loss_history"):
        assert on[key] == off[key], key
    assert on["loss_history"], "the run trained"
