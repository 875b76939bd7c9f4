"""The install files agree with each other."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert m, f"requirement {line!r} is not pinned with =="
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_requirements_are_pinned_and_include_torch():
    pins = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["jupyter-book"] == "1.0.4.post1"
    # make lab, the book's exercises and references, and sweep --executor need these
    for name in ("jupyter", "jupyterlab", "sphinx-exercise", "sphinxcontrib-bibtex", "submitit"):
        assert name in pins, f"{name} is not pinned in requirements.txt"


def test_pyproject_dependencies_match_requirements():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins((ROOT / "requirements.txt").read_text().splitlines())
    deps = _pins(project["dependencies"])
    for name, version in deps.items():
        assert pins.get(name) == version, f"{name}: pyproject {version}, requirements {pins.get(name)}"


def test_environment_yml_wraps_the_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements.txt" in pip_section
    # nothing installed by conda beside python and pip, so no version can disagree
    assert all(isinstance(d, dict) or d.split("=")[0] in ("python", "pip") for d in deps)
