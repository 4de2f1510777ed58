"""What a stage runs with (:class:`Context`) and what it gives back (:class:`Result`).

A notebook builds its context from its own parameters cell and calls the stage once::

    ctx = Context.from_notebook("07_distribution", globals())
    result = distribution.run(ctx)

A test or a benchmark builds the same context from keywords, into any folder::

    ctx = Context.create("07_distribution", profile="tiny", root=tmp_path, lakes="lakes.gpkg")

The parameters are the notebook's declared ones (papermill's ``inspect_notebook``), defaults filled
in, unknown names and wrong types refused by name (:func:`lakepaper.stages.runner.check_parameters`).
Declared names that are method constants of :mod:`lakepaper.params` with the default ``None`` (the
profile's value) override the profile in :attr:`Context.params`; the others are the stage's own
(:attr:`Context.args`: input paths, switches).

The context also carries the stage's declared inputs: :meth:`Context.upstream` opens an earlier
stage's folder only if the registry lists it as read (so the Makefile, which is generated from the
same registry, reruns this stage when that one changes), checks that it finished, and records the
sha256 of its manifest for this stage's manifest. Files are written atomically through
:mod:`lakepaper.io`; :meth:`Context.finish` writes the manifest last, with the parameters the stage
ran with.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakepaper import io, params, paths
from lakepaper.errors import InputError
from lakepaper.stages import Stage, get


@dataclass
class Result:
    """What a stage run gives back: its folder, manifest, the tables and figures a reader looks at."""

    stage: str
    out: Path
    manifest: dict[str, Any]
    tables: dict[str, Any] = field(default_factory=dict)  # name -> DataFrame (or Series), as displayed
    figures: dict[str, Path] = field(default_factory=dict)  # name (file stem) -> PNG path
    notes: list[str] = field(default_factory=list)  # the lines the stage printed, in order
    values: dict[str, Any] = field(default_factory=dict)  # anything else a notebook shows (e.g. a summary dict)

    def figure(self, name: str):
        """The PNG of a figure, for display in a notebook (an ``IPython.display.Image``)."""
        from IPython.display import Image

        if name not in self.figures:
            raise KeyError(f"{self.stage} drew no figure {name!r}; it drew: {', '.join(self.figures) or 'none'}")
        return Image(filename=str(self.figures[name]))

    def table(self, name: str, digits: int | None = 4):
        """A table the stage computed, rounded for display."""
        if name not in self.tables:
            raise KeyError(f"{self.stage} has no table {name!r}; it has: {', '.join(self.tables) or 'none'}")
        t = self.tables[name]
        return t.round(digits) if digits is not None and hasattr(t, "round") else t


@dataclass
class Context:
    """One run of one stage: profile, parameters, inputs, output folder."""

    stage: Stage
    profile: str
    args: dict[str, Any]  # the stage's own parameters (paths, switches), as declared by its notebook
    params: dict[str, Any]  # the profile's method constants, with the overrides given
    root: Path  # build/<profile> (or a test's folder)
    overrides: tuple[str, ...] = ()  # names of args that are method constants (recorded from params)
    started: float = field(default_factory=time.time)
    inputs: dict[str, str] = field(default_factory=dict)  # stage or file -> sha256, for the manifest
    result: Result | None = None
    quiet: bool = False

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        stage: str,
        *,
        profile: str = params.DEFAULT_PROFILE,
        root: str | Path | None = None,
        quiet: bool = False,
        **given: Any,
    ) -> Context:
        """A context from keyword parameters (the notebook's declared defaults for the rest).

        Args:
            stage: e.g. ``"07_distribution"``.
            profile: demo, tiny or paper.
            root: the profile's build folder holding every stage's folder (default ``build/<profile>``).
            quiet: do not print the stage's notes (they are still kept in the result).
            **given: parameters the stage's notebook declares.

        Raises:
            ParameterError: an unknown stage, an undeclared name or a value of the wrong type.
        """
        from lakepaper.stages.runner import check_parameters, declared_parameters

        entry = get(stage)
        check_parameters(stage, {"profile": profile, **given})
        declared = declared_parameters(stage)
        args = {k: v for k, v in declared.items() if k != "profile"}
        args.update(given)
        # a declared name that is a method constant with the default None ("the profile's value") overrides
        # the profile; one with another default (06's patch_size = 0) is the stage's own argument
        constants = tuple(k for k in args if k in params.CONSTANTS and declared[k] is None)
        p = params.resolve(profile, **{k: args[k] for k in constants})
        base = Path(root) if root is not None else paths.build_root() / profile
        return cls(entry, profile, args, p, base, overrides=constants, quiet=quiet)

    @classmethod
    def from_notebook(cls, stage: str, namespace: Mapping[str, Any], **kw: Any) -> Context:
        """A context from a notebook's namespace: the values of the names its parameters cell declares."""
        from lakepaper.stages.runner import declared_parameters

        names = [n for n in declared_parameters(stage) if n != "profile"]
        return cls.create(stage, profile=namespace["profile"], **{n: namespace[n] for n in names}, **kw)

    # --- folders ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def out(self) -> Path:
        """This stage's output folder."""
        return self.root / self.stage.name

    @property
    def figdir(self) -> Path:
        return self.out / "figures"

    def stage_dir(self, stage: str) -> Path:
        """Where stage ``stage`` writes, whether or not it has run (no input recorded)."""
        return self.root / stage

    def upstream(self, stage: str, *, required: bool = True) -> Path | None:
        """The folder of an earlier stage this stage reads, its manifest's sha256 recorded as an input.

        Args:
            stage: a stage the registry lists in this stage's ``reads``.
            required: if False, a stage that has not finished gives None instead of an error.

        Raises:
            ValueError: the registry does not list ``stage`` as read by this stage (a programming
                error: make would not rerun this stage when that one changes).
            InputError: the stage has not finished (``required``), or its manifest is unreadable.
        """
        if stage not in self.stage.reads:
            raise ValueError(
                f"{self.name} reads {stage}, which lakepaper.stages.REGISTRY does not list among its inputs "
                f"({', '.join(self.stage.reads) or 'none'}); add it there so make tracks the dependency"
            )
        folder = self.stage_dir(stage)
        if not (folder / "manifest.json").exists() and not required:
            return None
        io.read_manifest(folder)  # finished, readable
        self.inputs[stage] = io.sha256_file(folder / "manifest.json")
        return folder

    def override(self, **constants: Any) -> dict[str, Any]:
        """Set method constants from stage arguments of another name (stage 00's ``tiles`` is ``world_tiles``).

        None keeps the profile's value; any other value is validated like a notebook's override
        (:func:`lakepaper.params.validate`) and recorded in the manifest under the constant's name
        when the stage lists it in ``constants``. Returns :attr:`params`.
        """
        given = params.validate({k: v for k, v in constants.items() if v is not None})
        self.params = {**self.params, **given}
        return self.params

    def begin(self) -> Path:
        """Start the stage: its folder, no manifest, nothing a killed run left half-written."""
        io.begin_stage(self.out)
        self.result = Result(self.name, self.out, {})
        return self.out

    # --- what a reader sees -----------------------------------------------------------------------

    def _result(self) -> Result:
        if self.result is None:
            raise RuntimeError(f"{self.name}: call ctx.begin() before writing anything")
        return self.result

    def say(self, text: str) -> None:
        """A line for the reader: printed (in the notebook, below the stage's cell) and kept in the result."""
        self._result().notes.append(text)
        if not self.quiet:
            print(text)

    def show(self, name: str, table: Any) -> Any:
        """Keep a table for the notebook to display as ``result.table(name)``; returns it."""
        self._result().tables[name] = table
        return table

    def keep(self, name: str, value: Any) -> Any:
        """Keep any other value for the notebook (``result.values[name]``); returns it."""
        self._result().values[name] = value
        return value

    def save(self, fig, name: str, *, formats: Sequence[str] | None = None) -> Path:
        """Save a figure under ``figures/`` (see :func:`lakepaper.figures.save`), close it, keep its PNG path."""
        import matplotlib.pyplot as plt

        from lakepaper.figures import save

        path = self.figdir / name
        save(fig, path, formats=formats)
        plt.close(fig)
        png = path.with_suffix(".png")
        self._result().figures[png.stem] = png
        return png

    def write_csv(self, name: str, frame, **kwargs: Any) -> Path:
        """Write a table atomically under the stage folder."""
        return io.write_text(self.out / name, frame.to_csv(**kwargs))

    def record_input(self, key: str, path: str | Path) -> None:
        """Record the sha256 of a file input (not a stage) in the manifest."""
        self.inputs[key] = io.sha256_file(path)

    # --- the end ----------------------------------------------------------------------------------

    def recorded_parameters(
        self, constants: Iterable[str] = (), resolved: Mapping[str, Any] | None = None, omit: Iterable[str] = ()
    ) -> dict:
        """The manifest's parameters: profile, the stage's own arguments (as resolved, but those in
        ``omit``), the constants it used."""
        left_out = set(omit)
        own = {k: v for k, v in self.args.items() if k not in self.overrides and k not in left_out}
        own.update(resolved or {})
        used = dict.fromkeys([*self.overrides, *constants])
        return {"profile": self.profile, **own, **{k: self.params[k] for k in used}}

    def finish(
        self,
        *,
        constants: Iterable[str] = (),
        resolved: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
    ) -> Result:
        """Write the manifest, last, and return the result.

        Args:
            constants: the method constants the stage used, recorded with their values.
            resolved: the stage's own arguments as it resolved them (e.g. "" -> the default path).
            extra: the stage's numbers, for the paper page.
            omit: the stage's own arguments that change no output (a worker count, a display switch):
                not recorded.
        """
        result = self._result()
        path = io.write_manifest(
            self.out,
            stage=self.name,
            started=self.started,
            inputs=self.inputs,
            parameters=self.recorded_parameters(constants, resolved, omit),
            extra=extra,
        )
        result.manifest = io.read_manifest(path.parent)
        return result


def require_file(path: str | Path, what: str) -> Path:
    """A given input file that must exist, or an InputError naming it and what it was for."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what}: no such file or folder")
    return path
