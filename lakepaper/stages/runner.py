"""Running the numbered notebooks through papermill: parameters checked before anything runs.

papermill only *warns* about a parameter the notebook does not declare and passes any type;
a typo would then silently run the default. :func:`run_stage` reads the notebook's
``parameters`` cell first (``papermill.inspect_notebook``) and refuses unknown names and
values of the wrong type, naming them, before a single cell executes.

``make all PARAMS="-p name value ..."`` hands each stage the parameters its notebook declares
(:func:`split_parameters`; a name no stage declares is refused) and records them per stage in
``build/<profile>/.params/<stage>.json`` (:func:`write_stamps`), rewritten only when they change.
The stage's manifest depends on that file, so changing a parameter reruns the stage that takes it
and the stages after it, and nothing before it.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

from lakepaper import paths
from lakepaper.errors import InputError, ParameterError
from lakepaper.params import CONSTANTS, PROFILES, validate
from lakepaper.stages import STAGES


def notebook_path(stage: str) -> Path:
    """The source notebook of a stage."""
    if stage not in STAGES:
        raise ParameterError("stage", f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    path = paths.NOTEBOOKS / f"{stage}.ipynb"
    if not path.exists():
        raise InputError(path, "notebook missing")
    return path


def declared_parameters(stage: str) -> dict[str, Any]:
    """Name -> default of the notebook's ``parameters`` cell, in the order written.

    The cell is read with :mod:`ast`, not with papermill's line parser: papermill drops every line
    whose comment holds an ``=`` sign (``lakes = ""  # "" = stage 05's product``), so such a
    parameter would be refused as unknown. A default that is not a literal reads as None.
    """
    import json

    path = notebook_path(stage)
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(path, f"not a readable notebook ({e})") from e
    tagged = [c for c in cells if "parameters" in (c.get("metadata") or {}).get("tags", [])]
    if not tagged:
        raise InputError(path, "no cell tagged 'parameters'")
    try:
        tree = ast.parse("".join(tagged[0]["source"]))
    except SyntaxError as e:
        raise InputError(path, f"the parameters cell is not valid Python ({e})") from e
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        out[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                    except ValueError:
                        out[target.id] = None
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
            if name in CONSTANTS:
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


def split_parameters(given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Stage -> the given parameters its notebook declares (``profile`` excluded), each checked.

    Raises:
        ParameterError: a name that no stage's notebook declares, or a value of the wrong type.
    """
    declared = {stage: declared_parameters(stage) for stage in STAGES}
    for name in given:
        if not any(name in d for d in declared.values()):
            raise ParameterError(name, "no stage takes this parameter; `lakepaper stages` lists what each one takes")
    out = {}
    for stage, names in declared.items():
        mine = {k: v for k, v in given.items() if k in names and k != "profile"}
        check_parameters(stage, mine)
        out[stage] = mine
    return out


def stamp_path(profile: str, stage: str) -> Path:
    """The file that records the parameters a stage was asked to run with."""
    return paths.build_root() / profile / ".params" / f"{stage}.json"


def write_stamps(profile: str, given: dict[str, Any]) -> list[str]:
    """Write each stage's parameter file where its content changed; return the stages whose file changed."""
    from lakepaper import io

    changed = []
    for stage, mine in split_parameters(given).items():
        text = json.dumps(mine, sort_keys=True) + "\n"
        path = stamp_path(profile, stage)
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write_text(path, text)
        changed.append(stage)
    return changed


def read_stamp(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters recorded in a stage's parameter file."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(path, f"not a readable parameter file ({e})") from e
    if not isinstance(value, dict):
        raise InputError(path, "a parameter file holds one JSON object of name -> value")
    return value
