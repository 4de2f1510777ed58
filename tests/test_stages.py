"""Running stages: parameters are checked against the notebook before anything executes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakepaper import cli, io, stages
from lakepaper.errors import InputError, ParameterError


def test_notebooks_declare_profile_and_are_committed_clean():
    for stage in stages.STAGES:
        declared = stages.declared_parameters(stage)
        assert declared["profile"] == "demo"
        nb = json.loads(stages.notebook_path(stage).read_text())
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), stage


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("given", "name"),
    [
        ({"world_sed": 7}, "world_sed"),  # a typo papermill would only warn about
        ({"world_seed": "seven"}, "world_seed"),
        ({"profile": 3}, "profile"),
        ({"profile": "huge"}, "profile"),
    ],
)
def test_bad_notebook_parameters_are_named(given, name):
    with pytest.raises(ParameterError) as err:
        stages.check_parameters("00_world", given)
    assert err.value.name == name


def test_good_notebook_parameters_pass():
    given = {"profile": "tiny", "world_seed": 7, "tiles": ["T01", "T09"], "workers": 1}
    assert stages.check_parameters("00_world", given) == given


@pytest.mark.bad_input
def test_unknown_stage_is_named():
    with pytest.raises(ParameterError, match="unknown stage '99_magic'"):
        stages.notebook_path("99_magic")


def test_values_parse_as_papermill_reads_them():
    assert stages.parse_value("7") == 7
    assert stages.parse_value("[T01, T09]") == ["T01", "T09"]
    assert stages.parse_value("demo") == "demo"


def test_cli_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "stages", "world"):
        assert command in out


@pytest.mark.bad_input
def test_cli_refuses_a_bad_parameter_before_running(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPAPER_BUILD", str(tmp_path))
    assert cli.main(["run", "00_world", "--profile", "tiny", "-p", "world_sed", "7"]) == 2
    assert "world_sed" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.ipynb"))  # nothing executed, nothing written


@pytest.mark.bad_input
def test_corrupt_manifest_is_an_input_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json"):
        io.read_manifest(tmp_path)


def test_make_params_go_to_the_stages_that_declare_them():
    split = stages.split_parameters({"prob_threshold": 0.6, "min_lake_area_km2": 0.01})
    assert split["04_predict"] == {"prob_threshold": 0.6}
    assert split["05_postprocess"] == {"min_lake_area_km2": 0.01}
    assert all(v == {} for s, v in split.items() if s not in ("04_predict", "05_postprocess"))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("given", "name"), [({"prob_treshold": 0.6}, "prob_treshold"), ({"edge_px": "wide"}, "edge_px")]
)
def test_make_params_no_stage_takes_or_of_the_wrong_type_are_named(given, name):
    with pytest.raises(ParameterError) as e:
        stages.split_parameters(given)
    assert name in str(e.value)


def test_stamps_change_only_for_the_stage_whose_parameter_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPAPER_BUILD", str(tmp_path))
    assert stages.write_stamps("demo", {}) == list(stages.STAGES)  # first time: every stage's file
    before = {s: stages.stamp_path("demo", s).stat().st_mtime_ns for s in stages.STAGES}
    assert stages.write_stamps("demo", {}) == []  # nothing changed: no file touched
    assert stages.write_stamps("demo", {"edge_px": 16}) == ["04_predict"]
    after = {s: stages.stamp_path("demo", s).stat().st_mtime_ns for s in stages.STAGES}
    assert [s for s in stages.STAGES if after[s] != before[s]] == ["04_predict"]
    assert stages.read_stamp(stages.stamp_path("demo", "04_predict")) == {"edge_px": 16}
    assert stages.write_stamps("demo", {}) == ["04_predict"]  # back to the default reruns it again


# --- make's dependencies come from the registry ---------------------------------------------------------


def test_registry_covers_every_notebook_and_reads_only_earlier_stages():
    from lakepaper import paths

    assert sorted(p.stem for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) == list(stages.STAGES)
    for i, name in enumerate(stages.STAGES):
        assert set(stages.REGISTRY[name].reads) <= set(stages.STAGES[:i]), name
    assert stages.readers("05_postprocess") == ["06_accuracy", "07_distribution", "08_comparison"]
    assert stages.readers("10_checkdam") == []


def test_stage_code_is_what_its_notebook_imports():
    from lakepaper.stages import deps

    draws_comparison = [
        s
        for s in stages.STAGES
        if any(p.name == "comparison.py" and p.parent.name == "figures" for p in deps.code_files(s))
    ]
    assert draws_comparison == ["08_comparison"]
    world = {p.name for p in deps.code_files("00_world")}
    assert "loop.py" not in world and "unet.py" not in world  # stage 00 does not rerun when training changes
    world_code = deps.code_files("00_world")
    assert not [f for f in world_code if f.parent.name == "composite"]  # nor when compositing changes


@pytest.fixture
def built_copy(tmp_path):
    """A copy of the Makefile, notebooks and package in which every stage of the tiny profile looks finished:
    code older than the parameter files, older than the manifests (in stage order), older than the page."""
    import os
    import shutil
    import subprocess
    import time

    from lakepaper import paths

    root = tmp_path / "repo"
    shutil.copytree(paths.ROOT / "lakepaper", root / "lakepaper", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copytree(paths.NOTEBOOKS, root / "notebooks")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(paths.ROOT / name, root / name)
    (root / ".venv").symlink_to(paths.ROOT / ".venv")
    env = {**os.environ, "LAKEPAPER_BUILD": str(root / "build")}
    subprocess.run(
        [str(root / ".venv/bin/python"), "-m", "lakepaper", "stamps", "--profile", "tiny"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    # older than .venv/.installed, or make would reinstall the environment while it remakes .stages.mk (make
    # remakes included makefiles and their prerequisites even with -n), through the symlink into the real .venv
    t0 = min(time.time(), (paths.ROOT / ".venv" / ".installed").stat().st_mtime) - 1000
    code = [*root.rglob("*.py"), *root.rglob("*.ipynb"), root / "pyproject.toml"]
    for f in [*code, *(root / "build/tiny/.params").iterdir()]:
        os.utime(f, (t0, t0))
    for i, s in enumerate(stages.STAGES):
        m = root / "build/tiny" / s / "manifest.json"
        m.parent.mkdir(parents=True)
        m.write_text("{}")
        os.utime(m, (t0 + 10 + i, t0 + 10 + i))
    (root / "build/tiny/paper.html").write_text("")
    os.utime(root / "build/tiny/paper.html", (t0 + 100, t0 + 100))
    return root


def _make_reruns(root, *args) -> list[str]:
    import re
    import subprocess

    out = subprocess.run(["make", "-n", "all", "PROFILE=tiny", *args], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ran = re.findall(r"lakepaper run (\S+)", out.stdout)
    return ran + (["paper"] if "lakepaper paper" in out.stdout else [])


@pytest.mark.skipif(not (Path(__file__).parents[1] / ".venv" / ".installed").exists(), reason="needs make's .venv")
def test_make_reruns_only_the_stages_a_change_reaches(built_copy):
    installed = (built_copy / ".venv" / ".installed").stat().st_mtime_ns
    assert _make_reruns(built_copy) == []
    # a figure function: the stages that draw with it (and the page)
    assert _make_reruns(built_copy, "-W", "lakepaper/figures/comparison.py") == ["08_comparison", "paper"]
    # a parameter of stage 05: 05 and the stages that read its outputs, not 09-10
    reran = _make_reruns(built_copy, "PARAMS=-p min_lake_area_km2 0.01")
    assert reran == ["05_postprocess", "06_accuracy", "07_distribution", "08_comparison", "paper"]
    assert (built_copy / ".venv" / ".installed").stat().st_mtime_ns == installed, "make reinstalled the environment"


def test_notebooks_are_thin_one_call_and_displays():
    """A notebook's code outside the parameters cell: under 40 lines, one call of its stage's run(ctx), and
    nothing assigned but ``result`` (the numbers are computed in the package, the notebook displays them)."""
    import ast

    from lakepaper import paths

    for stage in stages.STAGES:
        cells = json.loads((paths.NOTEBOOKS / f"{stage}.ipynb").read_text())["cells"]
        code = [
            "".join(c["source"])
            for c in cells
            if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])
        ]
        lines = [line for cell in code for line in cell.splitlines() if line.strip()]
        assert len(lines) < 40, f"{stage}: {len(lines)} lines of code outside the parameters cell"
        module = stages.REGISTRY[stage].module
        call = f'result = {module}.run(Context.from_notebook("{stage}", globals()))'
        assert sum(line == call for line in lines) == 1, f"{stage}: no single line {call!r}"
        for cell in code:
            for node in ast.walk(ast.parse(cell)):
                targets = []
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                assert names <= {"result"}, f"{stage} assigns {names - {'result'}} in a notebook cell"
                assert not isinstance(node, ast.FunctionDef | ast.Lambda), f"{stage} defines a function"


def test_the_paper_profile_builds_no_world_and_asks_only_for_what_its_sources_need(tmp_path, monkeypatch):
    from lakepaper import prereqs
    from lakepaper.stages import deps, world
    from lakepaper.stages.context import Context

    assert stages.stages_for("paper") == stages.STAGES[1:] and stages.stages_for("tiny") == stages.STAGES
    text = deps.makefile_text("paper")
    assert "00_world" not in text and "PROFILE_STAGES := 01_composite" in text
    with pytest.raises(ParameterError, match="real data"):
        world.run(Context.create("00_world", profile="paper", root=tmp_path, quiet=True))

    def names(checks, missing=True):
        return [c.name for c in checks if c.ok != missing]

    # no source: the list says stage 01 needs one; Earth Engine is not asked for unless the source is gee
    given = {"01_composite": {}, "02_samples": {}}
    checks = prereqs.check("paper", references=str(tmp_path), verify=False, given=given)
    assert {"Imagery (stage 01)", "Sample regions (stage 02)", "Sample labels (stage 02)"} <= set(names(checks))
    assert not any("Earth Engine" in n for n in names(checks, missing=False) + names(checks))
    regions = tmp_path / "regions.gpkg"
    regions.write_text("")
    given = {
        "01_composite": {"source": "stac", "stac": "https://example.org/v1", "area": [90, 30, 91, 31]},
        "02_samples": {"regions": str(regions), "labels": str(tmp_path)},
    }
    checks = prereqs.check("paper", references=str(tmp_path), verify=False, given=given)
    assert not {"Imagery (stage 01)", "Sample regions (stage 02)", "Sample labels (stage 02)"} & set(names(checks))
    checks = prereqs.check("paper", references=str(tmp_path), verify=False, given={"01_composite": {"source": "gee"}})
    assert any("Earth Engine" in n for n in names(checks) + names(checks, missing=False))
