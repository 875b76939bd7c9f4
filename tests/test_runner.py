"""The book runner refuses bad parameters before any cell runs, keeps the last good page
when a notebook fails, and writes student notebooks without the solutions."""
from __future__ import annotations

import jupytext
import nbformat
import pytest

from haan_core import book
from haan_core.book import (NOTEBOOKS, NotebookFailed, check_parameters, main,
                            notebook_parameters, parse_parameters, run_notebook,
                            write_student)


def _run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_every_parameter_has_a_type_the_runner_can_check():
    for name in NOTEBOOKS:
        for p in notebook_parameters(name).values():
            assert p.kind != "any", (
                f"{name}: {p.name} = {p.default!r} names no type; write its comment as "
                f"'# str or None: ...' (or int/float/list/bool)")


def test_parameters_cell_is_read_with_defaults_kinds_and_comments():
    params = notebook_parameters("table3")
    assert list(params)[:3] == ["dataset", "root", "seed"]
    assert params["seed"].default == 0 and params["seed"].kind == "int"
    assert params["root"].optional and params["root"].kind == "str"
    assert params["epochs"].kind == "int" and params["epochs"].optional
    assert params["variants"].kind == "list" and len(params["variants"].default) == 7
    assert params["rho"].kind == "float" and not params["rho"].optional


def test_misspelt_name_is_an_error_with_the_closest_name_and_the_list(capsys):
    code, err = _run(capsys, "run", "table3", "-p", "sed", "3")
    assert code == 2
    assert "'sed' is not a parameter of table3" in err
    assert "did you mean 'seed'?" in err
    assert "batch_size, cache_dir, dataset" in err          # the parameters, listed
    assert "nothing was run" in err


def test_wrong_type_is_an_error_before_any_cell_runs(capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(book, "run_notebook", lambda *a, **k: ran.append(a))
    code, err = _run(capsys, "run", "table3", "-p", "seed", "abc")
    assert code == 2 and ran == []
    assert "parameter 'seed' must be an int (its default is 0), got 'abc' (a str)" in err
    for bad in (["-p", "seed", "1.5"], ["-p", "rho", "high"], ["-p", "seed", "null"],
                ["-p", "variants", "HAAN"], ["-p", "epochs", "[1]"]):
        code, err = _run(capsys, "run", "table3", *bad)
        assert code == 2 and ran == [] and f"'{bad[1]}'" in err, bad


def test_list_elements_are_checked_against_the_default_list(capsys):
    code, err = _run(capsys, "run", "figure6", "-p", "rhos", "[0.2, high]")
    assert code == 2 and "list of float values" in err and "'high' is not" in err


def test_yaml_file_is_checked_the_same_way(tmp_path, capsys):
    f = tmp_path / "p.yml"
    f.write_text("dataset: corel5k\nepochz: 3\n")
    code, err = _run(capsys, "run", "table3", "-f", str(f))
    assert code == 2 and "'epochz'" in err and "did you mean 'epochs'?" in err
    f.write_text("seed: [1, 2]\n")
    code, err = _run(capsys, "run", "table3", "-f", str(f))
    assert code == 2 and "'seed' must be an int" in err
    f.write_text("- a list\n")
    code, err = _run(capsys, "run", "table3", "-f", str(f))
    assert code == 2 and "mapping" in err
    code, err = _run(capsys, "run", "table3", "-f", str(tmp_path / "absent.yml"))
    assert code == 2 and "does not exist" in err


def test_good_values_pass_and_go_only_to_the_notebooks_that_declare_them():
    pairs = [("seed", "3"), ("rho", "1"), ("root", "2024"), ("epochs", "null"),
             ("rhos", "[0.1, 1]")]
    per = check_parameters(["table3", "figure6", "reproducibility"],
                           parse_parameters(pairs), typed=dict(pairs))
    assert per["table3"] == {"seed": 3, "rho": 1, "root": "2024", "epochs": None}
    assert per["figure6"] == {"seed": 3, "root": "2024", "epochs": None, "rhos": [0.1, 1]}
    assert per["reproducibility"] == {}
    assert isinstance(per["table3"]["root"], str)      # a text parameter keeps the text


def test_unknown_notebook_is_an_error(capsys):
    code, err = _run(capsys, "run", "table33")
    assert code == 2 and "no notebook 'table33'" in err and "table3" in err


def test_a_failing_notebook_keeps_the_last_good_page_and_says_where(tmp_path):
    previous = tmp_path / "awl.ipynb"
    previous.write_text("the last good page")
    with pytest.raises(NotebookFailed) as info:
        run_notebook("awl", {"dataset": "no-such-dataset"}, out_dir=tmp_path, force=True,
                     log=lambda *_: None)
    message = str(info.value)
    assert previous.read_text() == "the last good page"
    assert "awl: cell" in message and "failed" in message
    assert "no-such-dataset" in message                    # the error itself
    assert len(message.splitlines()) <= 7                  # a few lines, not a traceback
    assert "Traceback" not in message and "\x1b[" not in message


# ---------------------------------------------------------------- student notebooks


def _solution_cells(nb):
    return [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]


def test_student_notebooks_have_no_solutions_and_keep_the_exercises(tmp_path, monkeypatch):
    monkeypatch.setattr(book, "OUT_DIR", tmp_path / "not-executed")   # from the sources
    sources = {n: jupytext.read(book.NOTEBOOK_DIR / f"{n}.py") for n in NOTEBOOKS}
    removed = sum(len(_solution_cells(nb)) for nb in sources.values())
    assert removed >= 12, "the book should have exercises with solutions on its pages"
    written = write_student(tmp_path, clear_outputs=True, log=lambda *_: None)
    assert sorted(p.name for p in written) == sorted(f"{n}.ipynb" for n in NOTEBOOKS)
    for path in written:
        assert "{solution}" not in path.read_text()             # nowhere, metadata included
        nb = nbformat.read(path, as_version=4)
        src = sources[path.stem]
        assert not _solution_cells(nb)
        assert not any("{solution}" in c.source for c in nb.cells)
        assert sum("{exercise}" in c.source for c in nb.cells) == \
            sum("{exercise}" in c.source for c in src.cells)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        assert "parameters" in nb.cells[0].metadata.get("tags", [])


def test_student_keeps_executed_outputs_unless_asked(tmp_path, monkeypatch):
    src = jupytext.read(book.NOTEBOOK_DIR / "awl.py")
    executed = tmp_path / "executed"
    executed.mkdir()
    code = next(c for c in src.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    # papermill, given a notebook object, records the whole source notebook as its input
    src.metadata["papermill"] = {"input_path": jupytext.read(book.NOTEBOOK_DIR / "awl.py")}
    nbformat.write(src, executed / "awl.ipynb")
    monkeypatch.setattr(book, "OUT_DIR", executed)
    kept = nbformat.read(write_student(tmp_path / "a", ["awl"], log=lambda *_: None)[0], 4)
    assert any(c.get("outputs") for c in kept.cells if c.cell_type == "code")
    assert "{solution}" not in (tmp_path / "a" / "awl.ipynb").read_text()
    cleared = nbformat.read(write_student(tmp_path / "b", ["awl"], clear_outputs=True,
                                          log=lambda *_: None)[0], 4)
    assert not any(c.get("outputs") for c in cleared.cells if c.cell_type == "code")
    with pytest.raises(ValueError, match="executed pages live"):
        write_student(executed, ["awl"], log=lambda *_: None)


def test_a_solution_outside_a_tagged_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(":::{solution} ex-x\n:class: dropdown\nhidden\n:::")])
    with pytest.raises(ValueError, match="tag that cell"):
        book._student_cells(nb)


def test_student_command_exits_2_on_an_unknown_notebook(tmp_path, capsys):
    code, err = _run(capsys, "student", str(tmp_path), "table33")
    assert code == 2 and "no notebook 'table33'" in err
