"""Running the numbered notebooks: one stage each, parameters checked before anything runs.

papermill only *warns* about a parameter the notebook does not declare and passes any type;
a typo would then silently run the default. :func:`run_stage` reads the notebook's
``parameters`` cell first (``papermill.inspect_notebook``) and refuses unknown names and
values of the wrong type, naming them, before a single cell executes.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from lakepaper import paths
from lakepaper.errors import InputError, ParameterError
from lakepaper.params import PAPER, PROFILES, validate

#: The notebook stages, in the order data flows through them.
STAGES: tuple[str, ...] = ("00_world", "01_composite", "02_samples")


def notebook_path(stage: str) -> Path:
    """The source notebook of a stage."""
    if stage not in STAGES:
        raise ParameterError("stage", f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    path = paths.NOTEBOOKS / f"{stage}.ipynb"
    if not path.exists():
        raise InputError(path, "notebook missing")
    return path


def declared_parameters(stage: str) -> dict[str, Any]:
    """Name -> default of the notebook's ``parameters`` cell."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook_path(stage)))
    out = {}
    for name, info in declared.items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = None
    return out


def parse_value(text: str) -> Any:
    """A command-line value as papermill reads it: a Python/YAML literal, else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_parameters(stage: str, given: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown names and values whose type differs from the declared default."""
    declared = declared_parameters(stage)
    for name, value in given.items():
        if name not in declared:
            raise ParameterError(name, f"notebook {stage} has no such parameter; it takes: {', '.join(declared)}")
        default = declared[name]
        if value is None:
            continue
        if default is None:  # "None: the profile's value": check against the paper constant of that name
            if name in PAPER:
                validate({name: value})
            continue
        numeric = (int, float)
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, numeric):
            ok = isinstance(value, numeric) and (isinstance(default, float) or isinstance(value, int))
        elif isinstance(default, list | tuple):
            ok = isinstance(value, list | tuple)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ParameterError(
                name,
                f"notebook {stage} expects {type(default).__name__} like {default!r}, "
                f"got {type(value).__name__} {value!r}",
            )
    if "profile" in given and given["profile"] not in PROFILES:
        raise ParameterError("profile", f"unknown profile {given['profile']!r}; choose one of {sorted(PROFILES)}")
    return given


def run_stage(
    stage: str, *, profile: str = "demo", parameters: dict[str, Any] | None = None, progress: bool = True
) -> Path:
    """Execute a stage's notebook with papermill into ``build/<profile>/notebooks/``.

    Returns:
        The executed notebook's path. The stage's outputs are in ``build/<profile>/<stage>/``.
    """
    import papermill

    given = {"profile": profile, **(parameters or {})}
    check_parameters(stage, given)
    out = paths.build_root() / profile / "notebooks" / f"{stage}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LAKEPAPER_BUILD", str(paths.build_root()))
    papermill.execute_notebook(
        str(notebook_path(stage)),
        str(out),
        parameters=given,
        kernel_name="lakepaper",
        cwd=str(paths.NOTEBOOKS),
        progress_bar=progress,
    )
    return out
