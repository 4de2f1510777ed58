"""Every parameter of every notebook is visible to papermill (issue 17, item 9).

papermill's line parser (``papermill.inspect_notebook`` and the tools built on it) drops an
assignment whose comment holds an ``=`` sign, so such a parameter was invisible to it. The
comments of the parameters cells therefore say ``"": stage 05's product``, not ``"" = ...``.
"""

from __future__ import annotations

import ast
import json

import papermill as pm
import pytest

from lakepaper import paths
from lakepaper.stages import STAGES, check_parameters
from lakepaper.stages.runner import declared_parameters

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))


def assigned_names(path) -> list[str]:
    """The names assigned in the notebook's ``parameters`` cell, read with :mod:`ast`."""
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in (c.get("metadata") or {}).get("tags", [])]
    assert tagged, f"{path.name}: no cell tagged 'parameters'"
    names = []
    for node in ast.parse("".join(tagged[0]["source"])).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def test_every_stage_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} >= set(STAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_assignment_of_the_parameters_cell(path):
    names = assigned_names(path)
    assert names, f"{path.name}: the parameters cell assigns nothing"
    seen = pm.inspect_notebook(str(path))
    missing = [n for n in names if n not in seen]
    assert not missing, f"{path.name}: papermill does not see {missing} (an '=' in the comment?)"
    # the same defaults as our own reader
    if path.stem in STAGES:
        assert list(declared_parameters(path.stem)) == names


def test_readme_example_precision_bf16_is_accepted():
    assert check_parameters("04_predict", {"precision": "bf16"}) == {"precision": "bf16"}
    for stage, name in (("04_predict", "checkpoint"), ("06_accuracy", "samples_dir"), ("07_distribution", "lakes")):
        check_parameters(stage, {name: "somewhere"})
    for name in ("product", "glakes", "pld", "truth"):
        check_parameters("08_comparison", {name: "x.gpkg"})
    check_parameters("08_comparison", {"fig8_regions": [["a", 0, 0, 1, 1]]})
