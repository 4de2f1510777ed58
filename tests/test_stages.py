"""Running stages: parameters are checked against the notebook before anything executes."""

from __future__ import annotations

import json

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
