"""Where a measured number comes from, and writing results so nothing is half-written."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import torch

from .errors import HAANInputError

PACKAGE_DIR = Path(__file__).resolve().parent


def resolve_device(name: str = "auto") -> torch.device:
    """"auto": CUDA when present, else CPU. Anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available: "
                         "use --device auto or --device cpu")
    return dev


def exact_fp32():
    """fp32 means fp32 on a GPU too. cuDNN runs convolutions and RNNs (the Bi-GRU) in TF32,
    a 10-bit mantissa, by default on Ampere and later GPUs; inside this block it does not,
    and the setting is restored after it. (Matrix products are fp32 by PyTorch's default.)
    A no-op on the CPU. bf16 is asked for explicitly, with ``--precision bf16``."""
    c = torch.backends.cudnn
    return c.flags(enabled=c.enabled, benchmark=c.benchmark, deterministic=c.deterministic,
                   allow_tf32=False)


def keep_freed_memory() -> bool:
    """Let glibc's allocator keep the memory a process frees and hand it out again,
    instead of returning every block of 128 KiB or more to the system and taking it back,
    zeroed page by page, at the next allocation (``mallopt``: M_MMAP_MAX = 0,
    M_TRIM_THRESHOLD = unlimited). The methods that score every image-text pair with a
    network (SHAN, TSHSR, SCAN, SGRAF) allocate and free tensors of tens of MB many times
    an iteration, so on a CPU they spend much of their time in page faults: a SHAN training
    step at Corel 5K shapes (B = 128) took 2.8 s with this and 3.7 s without it on this
    project's 2-core CPU (2 threads, nothing else running; 4.1 s and 5.5 s on one thread);
    a HAAN epoch at Corel shapes took about 3 % less. It changes where tensors live, never
    a number. Called by the command line and by each sweep worker; memory freed stays with
    the process until it exits. Returns whether it was applied: not on other systems or C
    libraries, nor when the environment sets HAAN_KEEP_FREED_MEMORY=0."""
    if os.environ.get("HAAN_KEEP_FREED_MEMORY", "1") == "0" or platform.system() != "Linux":
        return False
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):    # another C library (musl has no mallopt)
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))


def device_description(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    threads = torch.get_num_threads()
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{threads} PyTorch thread{'s' if threads != 1 else ''})"


def cpu_model() -> str | None:
    """The processor's name ("AMD EPYC 9B14", say), or None where it cannot be read: timings
    from two machines of the same core count can differ by half, so a timing names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def git_commit() -> dict:
    """The commit of the haan_core checkout, and whether it had uncommitted changes."""
    def run(*args):
        return subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True,
                              text=True, timeout=10)
    try:
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return _commit_from_environment()
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return _commit_from_environment()


def _commit_from_environment() -> dict:
    """A copy of a checkout without its .git (a cluster node, a GPU machine that was sent
    the working tree) can name the commit it was copied from in $HAAN_GIT_COMMIT; the run
    then records it with ``commit_source`` "environment", and ``dirty`` unknown."""
    sha = os.environ.get("HAAN_GIT_COMMIT", "").strip()
    if not sha:
        return {"commit": None, "dirty": None}
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise HAANInputError(f"HAAN_GIT_COMMIT must be a full 40-hex-digit commit, got {sha!r}"
                             "; set it with HAAN_GIT_COMMIT=$(git rev-parse HEAD)")
    return {"commit": sha, "dirty": None, "commit_source": "environment"}


def provenance(config: dict, dev: torch.device, wall_seconds: float | None = None,
               commit: dict | None = None) -> dict:
    """``commit``: :func:`git_commit` as read when the run started (the code that ran);
    read now when not given."""
    return {**(commit or git_commit()), "config": config, "seed": config.get("seed"),
            "device": device_description(dev),
            # fp32 training is bit-for-bit reproducible on one kind of CPU, not across kinds
            # (BLAS picks other kernels on an Intel and an AMD CPU): the run names its CPU
            "cpu": cpu_model() if dev.type == "cpu" else None,
            "torch": torch.__version__, "python": platform.python_version(),
            "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": wall_seconds}


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename into place: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)     # mkstemp makes 0600; a result file is an ordinary file
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
    return atomic_write(path, write)


def save_torch(path, obj) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
