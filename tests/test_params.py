"""lakepaper.params: profiles scale a run but never change the method; parameters are checked."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

from lakepaper import params
from lakepaper.errors import ParameterError

METHOD_CONSTANTS = sorted(name for name, p in params.CONSTANTS.items() if not p.scale)


# --- profiles -----------------------------------------------------------------------------


def test_shipped_profiles_pass_the_check():
    params._check_profiles()


@pytest.mark.parametrize("profile", sorted(params.PROFILES))
def test_shipped_profiles_override_scale_parameters_only(profile):
    for name in params.PROFILES[profile]:
        assert params.CONSTANTS[name].scale, f"profile {profile!r} overrides method constant {name!r}"


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["area_ratio_threshold", "cloud_prob_threshold", "loss", "prob_threshold"])
def test_profile_setting_a_method_constant_is_refused(monkeypatch, name):
    monkeypatch.setitem(params.PROFILES, "sneaky", {"patch_size": 64, name: params.CONSTANTS[name].value})
    with pytest.raises(ParameterError, match="method constant") as err:
        params._check_profiles()
    assert err.value.name == name
    assert "sneaky" in str(err.value)


def test_profile_setting_an_unknown_parameter_is_refused(monkeypatch):
    monkeypatch.setitem(params.PROFILES["demo"], "pacth_size", 64)
    with pytest.raises(ParameterError, match="unknown parameter") as err:
        params._check_profiles()
    assert err.value.name == "pacth_size"


def test_method_constants_exist_and_scale_flags_are_sane():
    # The thresholds and rules of the paper must never be scalable.
    for name in ["area_ratio_threshold", "min_lake_area_km2", "cloud_prob_threshold", "prob_threshold", "loss"]:
        assert name in METHOD_CONSTANTS
    for name in ["patch_size", "unet_widths", "max_epochs", "world_tile_px"]:
        assert params.CONSTANTS[name].scale


# --- resolve ------------------------------------------------------------------------------


def test_paper_profile_is_the_paper():
    assert params.resolve("paper") == {name: p.value for name, p in params.CONSTANTS.items()}


def test_default_profile_is_demo():
    assert params.DEFAULT_PROFILE == "demo"
    assert params.resolve() == params.resolve("demo")


@pytest.mark.parametrize("profile", sorted(params.PROFILES))
def test_every_profile_keeps_every_method_constant(profile):
    values = params.resolve(profile)
    assert set(values) == set(params.CONSTANTS)
    for name in METHOD_CONSTANTS:
        assert values[name] == params.CONSTANTS[name].value, name


def test_demo_and_tiny_values():
    demo, tiny = params.resolve("demo"), params.resolve("tiny")
    # profiles only shrink the scale: the tiny test world is smaller than the demo, the demo than the paper
    assert tiny["patch_size"] < demo["patch_size"] < params.CONSTANTS["patch_size"].value
    assert tiny["world_tile_px"] < demo["world_tile_px"]
    assert tiny["edge_px"] < demo["edge_px"] < params.CONSTANTS["edge_px"].value
    assert 2 * demo["edge_px"] < demo["patch_size"]  # a central part survives the discarded edges
    assert demo["area_ratio_threshold"] == tiny["area_ratio_threshold"] == 0.8
    assert demo["min_lake_area_km2"] == 0.005
    assert demo["split_fractions"] == (0.6, 0.2, 0.2)


def test_resolve_applies_and_normalises_overrides():
    values = params.resolve("tiny", patch_size=32, unet_widths=[2, 4, 8, 16, 32])
    assert values["patch_size"] == 32
    assert values["unet_widths"] == (2, 4, 8, 16, 32)
    assert isinstance(values["unet_widths"], tuple)
    assert values["batch_size"] == params.PROFILES["tiny"]["batch_size"]


def test_resolve_returns_a_fresh_dict():
    values = params.resolve("demo")
    values["patch_size"] = 1
    values["area_ratio_threshold"] = 0.1
    assert params.resolve("demo")["patch_size"] == 128
    assert params.resolve("paper")["area_ratio_threshold"] == 0.8
    assert params.CONSTANTS["patch_size"].value == 576


@pytest.mark.bad_input
def test_resolve_unknown_profile():
    with pytest.raises(ParameterError, match="unknown profile") as err:
        params.resolve("huge")
    assert err.value.name == "profile"


def test_resolve_validates_overrides():
    with pytest.raises(ParameterError) as err:
        params.resolve("demo", patch_size="big")
    assert err.value.name == "patch_size"
    with pytest.raises(ParameterError) as err:
        params.resolve("demo", no_such_thing=1)
    assert err.value.name == "no_such_thing"


# --- validate -----------------------------------------------------------------------------


@pytest.mark.bad_input
def test_validate_rejects_an_unknown_name():
    with pytest.raises(ParameterError, match="unknown parameter") as err:
        params.validate({"patch_size": 64, "pach_size": 64})
    assert err.value.name == "pach_size"
    assert "'pach_size'" in str(err.value)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("patch_size", "64"),
        ("patch_size", 64.5),
        ("patch_size", True),
        ("patch_size", None),
        ("area_ratio_threshold", "0.8"),
        ("area_ratio_threshold", False),
        ("optimizer", 1),
        ("start_date", dt.date(2017, 3, 28)),
        ("unet_widths", 8),
        ("unet_widths", "8,16"),
        ("unet_widths", [8, 16.5]),
        ("region_types", ["NR", 2]),
    ],
)
def test_validate_rejects_a_wrong_type(name, value):
    with pytest.raises(ParameterError, match="expected") as err:
        params.validate({name: value})
    assert err.value.name == name
    assert repr(name) in str(err.value)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("patch_size", -64),
        ("max_epochs", -1),
        ("area_ratio_threshold", -0.1),
        ("min_lake_area_km2", -0.005),
        ("unet_widths", [-8, 16, 32, 64, 128]),
        ("split_fractions", (0.6, -0.2, 0.6)),
    ],
)
def test_validate_rejects_a_negative_value(name, value):
    with pytest.raises(ParameterError, match="negative") as err:
        params.validate({name: value})
    assert err.value.name == name


def test_validate_accepts_good_values():
    good = {
        "patch_size": 0,  # zero is not negative; range checks belong to the code that uses it
        "area_ratio_threshold": 1,  # an int where a float is expected is fine
        "cloud_prob_threshold": 40.0,
        "unet_widths": [4, 8, 16, 32, 64],
        "size_groups_km2": [0.01, 1, 100],
        "optimizer": "adadelta",
        "world_tiles": ["shield"],  # default None: any value
    }
    out = params.validate(good)
    assert out["unet_widths"] == (4, 8, 16, 32, 64)
    assert out["size_groups_km2"] == (0.01, 1, 100)
    assert out["world_tiles"] == ("shield",)
    assert out["area_ratio_threshold"] == 1
    assert params.validate({}) == {}


def test_validate_with_an_allowed_mapping():
    allowed = {"profile": "demo", "seed": 0, "tiles": None}
    assert params.validate({"profile": "tiny", "seed": 7}, allowed=allowed) == {"profile": "tiny", "seed": 7}
    with pytest.raises(ParameterError) as err:
        params.validate({"patch_size": 64}, allowed=allowed)
    assert err.value.name == "patch_size"
    with pytest.raises(ParameterError) as err:
        params.validate({"seed": "7"}, allowed=allowed)
    assert err.value.name == "seed"
    with pytest.raises(ParameterError) as err:
        params.validate({"seed": -7}, allowed=allowed)
    assert err.value.name == "seed"


def test_parameter_error_is_a_value_error():
    with pytest.raises(ValueError):
        params.validate({"nope": 1})


# --- the rest -----------------------------------------------------------------------------


def test_date_range():
    start, end = params.date_range()
    assert start == dt.date(2017, 3, 28)
    assert end == dt.date(2022, 4, 10)
    assert start < end


def test_every_constant_names_its_source():
    for name, p in params.CONSTANTS.items():
        assert p.source.strip(), name


def test_every_constant_has_exactly_one_of_the_four_provenance_labels():
    assert set(params.ORIGINS) == {"paper", "code", "tutorial", "own"}
    tags = {"paper": ("[P]", "[Q]", "[C]"), "code": ("[A]",), "tutorial": ("[EE]",)}
    for name, p in params.CONSTANTS.items():
        assert isinstance(p.origin, str) and p.origin in params.ORIGINS, name
        assert p.provenance == params.ORIGINS[p.origin]
        if p.origin in tags:  # the source names the document the label claims
            assert any(t in p.source for t in tags[p.origin]), name
        else:  # our own choice: never a bare citation of someone else's value, and it says why
            assert not p.source.startswith(("[A]", "[EE]")), name
            assert len(p.source.split()) >= 8, f"{name}: an own choice needs its reason"


def test_a_constant_without_a_known_label_is_refused():
    with pytest.raises(ParameterError) as err:
        params._p(1, "somewhere", origin="folklore")
    assert err.value.name == "origin"
    with pytest.raises(TypeError):
        params._p(1, "somewhere")  # the label is required


def test_the_paper_profile_trains_like_the_authors_code():
    """Issue 20: the authors' code draws about 11,056 training and 3,584 validation patches per epoch for at
    most 200 epochs; demo and tiny scale these down."""
    p = params.resolve("paper")
    assert (p["patches_per_epoch"], p["val_patches_per_epoch"], p["max_epochs"]) == (11056, 3584, 200)
    for name in ("patches_per_epoch", "val_patches_per_epoch", "max_epochs"):
        assert params.CONSTANTS[name].origin == "code" and params.CONSTANTS[name].scale
        assert all(p[name] < params.CONSTANTS[name].value for p in map(params.resolve, ("demo", "tiny")))


def test_module_doctest():
    result = doctest.testmod(params, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
