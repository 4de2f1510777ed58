"""What each stage depends on, for ``make``: the stages it reads, the package modules it runs, and the
hand-made files under ``labels/<profile>/`` it applies (``Stage.labels``: stage 05's review layers).

A stage's code is its notebook and every ``lakepaper`` module the notebook imports, followed
through the package's own imports (module level and inside functions alike, read with :mod:`ast`
without importing anything). Editing a figure function therefore reruns the stages that draw
with it, and no other.

:func:`write_makefile` writes ``build/<profile>/.stages.mk``, which the Makefile includes::

    STAGE_READS_05_postprocess := $(BUILD)/00_world/manifest.json ...
    STAGE_CODE_05_postprocess := notebooks/05_postprocess.ipynb lakepaper/stages/postprocess.py ...
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

from lakepaper import paths
from lakepaper.stages import REGISTRY, stages_for

PACKAGE = paths.ROOT / "lakepaper"


def module_file(name: str) -> Path | None:
    """The source file of a ``lakepaper`` module or package, or None if there is none."""
    parts = name.split(".")
    if parts[0] != "lakepaper":
        return None
    base = paths.ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, package: str) -> set[str]:
    """Names of the ``lakepaper`` modules a parsed source imports (relative imports resolved against ``package``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    out = set()
    for name in found:
        if not name.startswith("lakepaper"):
            continue
        parts = name.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ too
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {n for n in out if module_file(n) is not None}


@cache
def _module_imports(name: str) -> frozenset[str]:
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    return frozenset(_imported(ast.parse(path.read_text(), str(path)), package))


def closure(modules: set[str]) -> set[str]:
    """The modules given and everything they import within the package."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_module_imports(m) - seen)
    return seen


def notebook_imports(notebook: Path) -> set[str]:
    """The ``lakepaper`` modules a notebook's code cells import."""
    cells = json.loads(notebook.read_text())["cells"]
    out: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # IPython magics and shell escapes are not Python
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        out |= _imported(ast.parse(source), "lakepaper")
    return out


def code_files(stage: str) -> list[Path]:
    """The files whose change reruns ``stage``: its notebook and the package modules it runs, sorted."""
    notebook = paths.NOTEBOOKS / f"{stage}.ipynb"
    entry = f"lakepaper.stages.{REGISTRY[stage].module}"
    modules = closure(notebook_imports(notebook) | ({entry} if module_file(entry) else set()))
    return [notebook, *sorted(module_file(m) for m in modules)]


def makefile_text(profile: str) -> str:
    """The make variables of every stage the profile builds (:func:`lakepaper.stages.stages_for`): the
    manifests it reads, the files of its code."""
    build = "$(BUILD)"  # the Makefile's build/<profile>
    built = stages_for(profile)
    lines = [f"# written by `lakepaper stamps --profile {profile}` from lakepaper.stages.REGISTRY; do not edit"]
    lines.append(f"PROFILE_STAGES := {' '.join(built)}")
    for stage in built:
        reads = " ".join(f"{build}/{up}/manifest.json" for up in REGISTRY[stage].reads if up in built)
        code = " ".join(p.relative_to(paths.ROOT).as_posix() for p in code_files(stage))
        if REGISTRY[stage].labels:  # the hand-made files it applies, once they exist
            code += " $(wildcard " + " ".join(f"labels/{profile}/{f}" for f in REGISTRY[stage].labels) + ")"
        lines += [f"STAGE_READS_{stage} := {reads}", f"STAGE_CODE_{stage} := {code}"]
    return "\n".join(lines) + "\n"


def makefile_path(profile: str) -> Path:
    return paths.build_root() / profile / ".stages.mk"


def write_makefile(profile: str) -> Path:
    """Write ``build/<profile>/.stages.mk`` if its content changed; return its path."""
    from lakepaper import io

    path = makefile_path(profile)
    text = makefile_text(profile)
    if not (path.exists() and path.read_text() == text):
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write_text(path, text)
    return path
