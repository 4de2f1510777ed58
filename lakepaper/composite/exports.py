"""Earth Engine exports at global scale (issue 18, item 2): a ledger, an orchestrator, the task service.

A week-long export of ~24,000 tiles (:mod:`lakepaper.composite.landgrid`) must survive the
process, the machine and the network dying. Everything the run knows is in the **ledger**, an
SQLite file in the build folder: one row per tile with its state, request and task ids, attempt,
message and times, and an append-only ``events`` table of every transition; every transition is one
transaction. A rerun reads the ledger alone; a ledger made for other recipe parameters refuses to
resume (:data:`LEDGER_PARAMS`).

States of a tile::

    planned -> submitting -> submitted -> running -> completed -> downloaded -> verified
                  |               \\__________\\___________\\____________\\--> failed (message)
                  \\-> planned (quota)                           failed -> planned (retry, bounded)

**No tile is submitted twice.** Every start carries a request id (``ee.data.newTaskId()``, which
``ee.batch.Task.start`` sends as the request's ``requestId``) and a description naming the tile and
that id (:func:`description`). The orchestrator draws the request id first and commits it with state
``submitting`` *before* it asks the server to start the task; the server's task id comes back with
the start and is committed with state ``submitted``. After a crash between the two, a
``submitting`` tile is looked up by its description among the server's tasks
(``ee.data.listOperations``): a task found is adopted (no new task), a description the server does
not know was never started and is started now, with the same request id.

**Throttle, poll, retry.** At most ``max_concurrent`` tasks are queued or running (Earth Engine
allows a few thousand per project; a quota error stops submission until tasks finish). Status is
polled in batches (``ee.data.getTaskStatus`` shapes: ``state`` READY, RUNNING, COMPLETED, FAILED,
CANCELLED, or UNKNOWN for a task that disappeared), every ``poll_s`` seconds while something
changes, doubling up to ``max_poll_s`` while nothing does. FAILED, CANCELLED and vanished tasks,
and files that fail verification or download, are retried up to ``max_attempts`` submissions per
tile; a task the server refuses fails its tile only; network or service errors back off and stop the
run after ``MAX_ERRORS`` rounds in a row; refused credentials stop it at once with the credentials
file named (rerun after ``earthengine authenticate``: the ledger resumes).

**Download and verification.** A completed task's file is fetched (Cloud Storage, a synced Drive
folder, or a direct ``getDownloadURL`` for small tiles: :class:`EarthEngineService`) into a
staging folder, checked (:func:`verify_export`: band count and names where the file has them,
int16, CRS, transform and size against the grid), tagged and moved atomically into
``tiles/<tile>.tif`` in the stage-01 contract (:mod:`lakepaper.composite.sources`), checked again
as the contract reads it (:func:`check_contract`: band descriptions, SCALE, dtype), and only then
is the tile ``verified``.

The task service is an interface (:class:`TaskService`) so that the tests drive the orchestrator
with a local stand-in that answers in Earth Engine's own response shapes (``tests/ee_offline.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine

from lakepaper import io
from lakepaper.composite import landgrid
from lakepaper.composite.kernel import MEAN_BANDS
from lakepaper.composite.local import COUNT_BAND, NODATA, RECIPE_PARAMS
from lakepaper.errors import InputError, LakepaperError, ParameterError

#: Every state a tile can be in, in the order of a successful export.
STATES = ("planned", "submitting", "submitted", "running", "completed", "downloaded", "verified", "failed")
#: States in which a task occupies the server's queue.
ACTIVE = ("submitting", "submitted", "running")
#: Earth Engine task states (``ee.batch.Task.State``) -> the ledger's.
EE_STATES = {"READY": "submitted", "RUNNING": "running", "COMPLETED": "completed"}
#: Default cap on tasks queued or running at once (Earth Engine allows a few thousand per project;
#: a few hundred keep the queue busy without crowding a shared project).
MAX_CONCURRENT = 300
#: Default submissions per tile before it stays failed.
MAX_ATTEMPTS = 3
#: Default poll interval while things change, and its cap while nothing does, seconds.
POLL_S, MAX_POLL_S = 30.0, 600.0
#: Where ``earthengine authenticate`` stores credentials (as ``gee.EE_CREDENTIALS``; named in errors).
EE_CREDENTIALS = Path("~/.config/earthengine/credentials")
#: Rounds in a row that may fail (network, service errors) before the run stops (the ledger keeps its state).
MAX_ERRORS = 8
#: Status queries per request (ee.data.getTaskStatus takes a list of ids).
STATUS_BATCH = 100
#: The parameters a ledger is bound to: a ledger made for other values refuses to resume.
LEDGER_PARAMS = tuple(sorted((*RECIPE_PARAMS, "edge_px", "s2_collection")))


class QuotaExceeded(LakepaperError):
    """The task service refused a new task because its queue is full (retry later)."""


class CredentialsRevoked(LakepaperError):
    """The task service refused the credentials (expired, revoked): the run stops, the ledger stays."""


def classify(exc: BaseException) -> LakepaperError | None:
    """Earth Engine's and Google auth's exceptions as ours: quota, credentials, or None (another error)."""
    text = str(exc)
    with contextlib.suppress(ImportError):
        import google.auth.exceptions

        if isinstance(exc, google.auth.exceptions.GoogleAuthError):
            return CredentialsRevoked(text)
    lowered = text.lower()
    if "too many tasks" in lowered or "quota" in lowered or "rate limit" in lowered:
        return QuotaExceeded(text)
    if any(k in lowered for k in ("invalid_grant", "unauthenticated", "permission denied", "revoked")):
        return CredentialsRevoked(text)
    return None


# --- tiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridTile:
    """One tile of the grid: name, EPSG and core bounds in metres (``gee.Tile``'s fields, without ee)."""

    name: str
    epsg: int
    bounds: tuple[float, float, float, float]

    def export_grid(self, p: dict[str, Any]) -> tuple[str, Affine, tuple[int, int]]:
        """CRS, transform and (width, height) of the export: the core plus ``edge_px`` on every side."""
        res, edge = float(p["resolution_m"]), int(p["edge_px"]) * float(p["resolution_m"])
        left, bottom, right, top = self.bounds
        size = (round((right - left + 2 * edge) / res), round((top - bottom + 2 * edge) / res))
        return f"EPSG:{self.epsg}", Affine(res, 0.0, left - edge, 0.0, -res, top + edge), size

    def to_gee(self):
        """The same tile as :class:`lakepaper.composite.gee.Tile` (imports Earth Engine)."""
        from lakepaper.composite import gee

        return gee.Tile(self.name, self.epsg, self.bounds)


def tiles_of(grid: pd.DataFrame) -> list[GridTile]:
    """The grid's rows as tiles."""
    return [
        GridTile(r.tile, int(r.epsg), (float(r.left), float(r.bottom), float(r.right), float(r.top)))
        for r in grid.itertuples()
    ]


# --- the task service ----------------------------------------------------------------------------


class TaskService(Protocol):
    """What the orchestrator needs from Earth Engine (or from a stand-in with its response shapes)."""

    def new_task_id(self) -> str:
        """A fresh request id (``ee.data.newTaskId()[0]``)."""

    def start(self, request_id: str, tile: GridTile, p: dict[str, Any]) -> str:
        """Start the tile's export with this request id and :func:`description`; the server's task id."""

    def lookup(self, wanted: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Of ``(tile, request_id)`` pairs, the request ids the server has a task for -> that task's id."""

    def status(self, task_ids: Sequence[str]) -> list[dict[str, Any]]:
        """One ``ee.data.getTaskStatus`` dict per id, in order (state UNKNOWN for unknown ids)."""

    def fetch(self, status: dict[str, Any], tile: GridTile, dest: Path) -> None:
        """Write the completed task's file to ``dest``."""


class EarthEngineService:
    """The real service: Earth Engine's batch exports, fetched from Cloud Storage, Drive or a URL.

    Args:
        p: parameters (the composite recipe of :mod:`lakepaper.composite.gee`).
        destination: ``gcs`` (``bucket``, optional ``prefix``; fetched with google-cloud-storage),
            ``drive`` (``folder``; fetched from ``drive_dir``, where Google Drive for desktop syncs
            that folder), or ``url`` (no task: each tile computed through ``getDownloadURL`` when it
            is started; Earth Engine's 32 MB request limit makes this for small tiles only).
        staging: folder for ``url`` downloads.
        project: Google Cloud project for ``ee.Initialize`` (None: already initialised).
    """

    def __init__(
        self,
        p: dict[str, Any],
        *,
        destination: str = "gcs",
        bucket: str | None = None,
        prefix: str = "lakepaper/",
        folder: str | None = "lakepaper",
        drive_dir: str | os.PathLike[str] | None = None,
        staging: str | os.PathLike[str] | None = None,
        project: str | None = None,
        initialise: bool = True,
    ) -> None:
        if destination not in ("gcs", "drive", "url"):
            raise ParameterError("destination", f"expected 'gcs', 'drive' or 'url', got {destination!r}")
        if destination == "gcs" and not bucket:
            raise ParameterError("bucket", "a Cloud Storage export needs a bucket")
        if destination == "drive" and not drive_dir:
            raise ParameterError("drive_dir", "a Drive export needs the local folder where Drive syncs its files")
        from lakepaper.composite import gee

        self.gee, self.p, self.destination = gee, p, destination
        self.bucket, self.prefix, self.folder = bucket, prefix, folder
        self.drive_dir = Path(drive_dir) if drive_dir else None
        self.staging = Path(staging or ".gee-url")
        if initialise:
            gee.initialize(project)

    def new_task_id(self) -> str:
        import ee

        return ee.data.newTaskId()[0]

    def start(self, request_id: str, tile: GridTile, p: dict[str, Any]) -> str:
        gtile = tile.to_gee()
        try:
            if self.destination == "url":  # computed now; the request id names the staged file
                self.gee.download_tile(gtile, self.staging / f"{request_id}.tif", p)
                return request_id
            (task,) = self.gee.export_tiles(
                [gtile],
                p,
                destination=self.destination,
                folder=self.folder,
                bucket=self.bucket,
                prefix=self.prefix,
            )
            task.config["description"] = description(tile.name, request_id)
            task._request_id = request_id  # sent as the request's requestId
            task.start()
            return task.id
        except Exception as exc:  # ee.EEException, google.auth errors, HTTP errors of the client library
            raise classify(exc) or exc from exc

    def lookup(self, wanted: Sequence[tuple[str, str]]) -> dict[str, str]:
        import ee
        from ee import _cloud_api_utils

        if self.destination == "url":
            return {rid: rid for _, rid in wanted if (self.staging / f"{rid}.tif").is_file()}
        by_description = {description(t, rid): rid for t, rid in wanted}
        try:
            operations = ee.data.listOperations()
        except Exception as exc:
            raise classify(exc) or exc from exc
        found = {}
        for op in operations:
            rid = by_description.get(op.get("metadata", {}).get("description"))
            if rid is not None:
                found[rid] = _cloud_api_utils.convert_operation_name_to_task_id(op["name"])
        return found

    def status(self, task_ids: Sequence[str]) -> list[dict[str, Any]]:
        import ee

        if self.destination == "url":
            return [
                {"id": t, "state": "COMPLETED" if (self.staging / f"{t}.tif").is_file() else "UNKNOWN"}
                for t in task_ids
            ]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return ee.data.getTaskStatus(list(task_ids))
        except Exception as exc:
            raise classify(exc) or exc from exc

    def fetch(self, status: dict[str, Any], tile: GridTile, dest: Path) -> None:
        if self.destination == "url":
            shutil.copyfile(self.staging / f"{status['id']}.tif", dest)
        elif self.destination == "drive":
            found = sorted(self.drive_dir.glob(f"{tile.name}*.tif"))
            if len(found) != 1:
                raise InputError(self.drive_dir, f"expected one file {tile.name}.tif synced from Drive, found {found}")
            shutil.copyfile(found[0], dest)
        else:
            try:
                from google.cloud import storage
            except ImportError as exc:
                raise ImportError("fetching from Cloud Storage needs google-cloud-storage") from exc
            blob = storage.Client().bucket(self.bucket).blob(f"{self.prefix}{tile.name}.tif")
            try:
                blob.download_to_filename(str(dest))
            except Exception as exc:
                raise classify(exc) or exc from exc


# --- the ledger ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (
    tile TEXT PRIMARY KEY, epsg INTEGER NOT NULL,
    left REAL NOT NULL, bottom REAL NOT NULL, right REAL NOT NULL, top REAL NOT NULL,
    state TEXT NOT NULL, request_id TEXT, task_id TEXT, attempt INTEGER NOT NULL DEFAULT 0, message TEXT,
    clear_share REAL, mean_count REAL, planned_at REAL, updated_at REAL, verified_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, tile TEXT NOT NULL,
    state TEXT NOT NULL, task_id TEXT, attempt INTEGER, message TEXT
);
CREATE INDEX IF NOT EXISTS tiles_state ON tiles(state);
"""


def description(tile: str, request_id: str) -> str:
    """The export task's description: the tile and the request id (how a task is found after a crash)."""
    return f"lakepaper_{tile}_{request_id}"


def fingerprint(p: dict[str, Any]) -> str:
    """A hash of the parameters a ledger is bound to (:data:`LEDGER_PARAMS`)."""
    chosen = {k: p[k] for k in LEDGER_PARAMS if k in p}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Ledger:
    """The export's state, one SQLite file; every transition one transaction (committed or not at all).

    ``durable`` (default) makes each commit wait for the disk (``PRAGMA synchronous=FULL``), so that a
    power cut cannot lose a ``submitting`` record whose task the server already has; without it a
    commit survives the process dying but not the machine (the tests' kills are the process's).

    Raises:
        InputError: the file cannot be created or written, is not a ledger, or was made for other
            parameters (its path named; the file is left as it was).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        p: dict[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        durable: bool = True,
    ):
        self.path, self.clock = Path(path), clock
        self.fingerprint = fingerprint(p)
        if self.path.is_dir():
            raise InputError(self.path, "the ledger path is a folder, expected a file (e.g. exports.sqlite)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(self.path, f"cannot create the ledger's folder ({exc})") from exc
        existed = self.path.is_file() and self.path.stat().st_size > 0
        self.db = None
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            if existed:
                self._check_existing()
            # one transaction: the schema and the parameters' fingerprint (and a write that proves the file writable)
            self.db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO meta VALUES ('fingerprint', '{self.fingerprint}'); "
                "COMMIT;"
            )
        except InputError:
            self.db.close()
            raise
        except sqlite3.Error as exc:
            if self.db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK") if self.db.in_transaction else None
                self.db.close()
            raise InputError(self.path, f"cannot use the ledger ({exc}); it was left as it was") from exc

    def _check_existing(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "tiles", "events"} <= tables:
            raise InputError(self.path, f"not an export ledger (tables {sorted(tables)})")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        empty = self.db.execute("SELECT COUNT(*) FROM tiles").fetchone()[0] == 0
        if (row is None and not empty) or (row is not None and row[0] != self.fingerprint):
            raise InputError(
                self.path,
                "the ledger was made for other composite parameters; use a new ledger (or the parameters it was made "
                "for) so that no tile mixes two recipes",
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def plan(self, tiles: Sequence[GridTile]) -> int:
        """Add tiles not yet in the ledger as ``planned``; the number added."""
        now = self.clock()
        with self._transaction():
            known = {r[0] for r in self.db.execute("SELECT tile FROM tiles")}
            new = [t for t in tiles if t.name not in known]
            self.db.executemany(
                "INSERT INTO tiles (tile, epsg, left, bottom, right, top, state, planned_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                [(t.name, t.epsg, *t.bounds, now, now) for t in new],
            )
            self.db.executemany(
                "INSERT INTO events (at, tile, state) VALUES (?, ?, 'planned')", [(now, t.name) for t in new]
            )
        return len(new)

    def transition(self, tile: str, state: str, **fields: Any) -> None:
        """Set a tile's state (and ``task_id``, ``attempt``, ``message``, ...) and log it, in one transaction."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        now = self.clock()
        fields = {"state": state, "updated_at": now, **fields}
        if state == "verified":
            fields.setdefault("verified_at", now)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._transaction():
            cur = self.db.execute(f"UPDATE tiles SET {sets} WHERE tile = ?", (*fields.values(), tile))
            if cur.rowcount != 1:
                raise KeyError(tile)
            row = self.db.execute("SELECT task_id, attempt, message FROM tiles WHERE tile = ?", (tile,)).fetchone()
            self.db.execute(
                "INSERT INTO events (at, tile, state, task_id, attempt, message) VALUES (?, ?, ?, ?, ?, ?)",
                (now, tile, state, *row),
            )

    def rows(self, *states: str) -> pd.DataFrame:
        """The tiles (in any of ``states``; all when none), as a frame in tile order."""
        query = "SELECT * FROM tiles"
        if states:
            query += f" WHERE state IN ({', '.join('?' * len(states))})"
        return pd.read_sql_query(query + " ORDER BY tile", self.db, params=states)

    def counts(self) -> dict[str, int]:
        """Tiles per state (every state listed)."""
        got = dict(self.db.execute("SELECT state, COUNT(*) FROM tiles GROUP BY state").fetchall())
        return {s: int(got.get(s, 0)) for s in STATES}

    def events(self) -> pd.DataFrame:
        """Every transition, in order."""
        return pd.read_sql_query("SELECT * FROM events ORDER BY seq", self.db)


# --- verification --------------------------------------------------------------------------------


def _bands(p: dict[str, Any]) -> list[str]:
    bands = list(p["composite_bands"])
    if any(b not in MEAN_BANDS for b in bands) or len(set(bands)) != len(bands):
        raise ParameterError("composite_bands", f"{bands}: each of {list(MEAN_BANDS)} at most once")
    return bands


def verify_export(path: Path, tile: GridTile, p: dict[str, Any]) -> None:
    """Check a downloaded export against its tile before it counts: bands, dtype, CRS, grid.

    Raises:
        InputError: naming the file and the first difference.
    """
    want = [*_bands(p), COUNT_BAND]
    crs, transform, size = tile.export_grid(p)
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"tile {tile.name}: not a readable GeoTIFF ({exc})") from exc
    with src:
        if src.count != len(want):
            raise InputError(path, f"tile {tile.name}: {src.count} bands, expected {len(want)} {want}")
        desc = [d or "" for d in src.descriptions]
        if any(desc) and desc != want:
            raise InputError(path, f"tile {tile.name}: bands are {desc}, expected {want}")
        if set(src.dtypes) != {"int16"}:
            raise InputError(path, f"tile {tile.name}: data types {sorted(set(src.dtypes))}, expected int16")
        if src.crs is None or src.crs.to_epsg() != tile.epsg:
            raise InputError(path, f"tile {tile.name}: CRS {src.crs}, expected {crs}")
        if (src.width, src.height) != size:
            raise InputError(path, f"tile {tile.name}: {src.width} x {src.height} px, expected {size[0]} x {size[1]}")
        if not src.transform.almost_equals(transform):
            raise InputError(
                path, f"tile {tile.name}: transform {tuple(src.transform)[:6]}, expected {tuple(transform)[:6]}"
            )


def tag_export(path: Path, tile: GridTile, p: dict[str, Any], task_id: str) -> None:
    """Write the contract's band names, nodata and tags into a verified export (in place)."""
    bands = _bands(p)
    tags = {
        "SCALE": p["composite_scale"],
        "BANDS": ",".join(bands),
        "COUNT_BAND": COUNT_BAND,
        "TILE": tile.name,
        "SOURCE": "gee",
        "TASK_ID": task_id,
        "START_DATE": p["start_date"],
        "END_DATE": p["end_date"],
        "EDGE_PX": p["edge_px"],
        "CORE_BOUNDS": ",".join(f"{v:g}" for v in tile.bounds),
    }
    with rasterio.open(path, "r+") as dst:
        dst.nodata = NODATA
        for i, name in enumerate([*bands, COUNT_BAND], start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})


def check_contract(path: Path, tile: GridTile, p: dict[str, Any]) -> tuple[float, float]:
    """Check a tile file as the stage-01 contract reads it; its clear share and mean count.

    Raises:
        InputError: band descriptions, SCALE tag, dtype or nodata not the contract's.
    """
    want = [*_bands(p), COUNT_BAND]
    with rasterio.open(path) as src:
        desc = list(src.descriptions)
        if desc != want:
            raise InputError(path, f"tile {tile.name}: bands are described {desc}, expected {want}")
        if src.tags().get("SCALE") != str(p["composite_scale"]):
            raise InputError(
                path, f"tile {tile.name}: SCALE tag {src.tags().get('SCALE')!r}, expected {p['composite_scale']}"
            )
        if set(src.dtypes) != {"int16"} or src.nodata != NODATA:
            raise InputError(
                path, f"tile {tile.name}: {sorted(set(src.dtypes))} nodata {src.nodata}, expected int16 {NODATA}"
            )
        seen = total = counted = 0
        for _, window in src.block_windows(len(want)):
            count = src.read(len(want), window=window).astype(np.int64)
            seen += int((count > 0).sum())
            counted += int(count.sum())
            total += count.size
    return seen / max(total, 1), counted / max(total, 1)


# --- the orchestrator ----------------------------------------------------------------------------


class Exporter:
    """Drive every tile of a ledger to ``verified`` (module docstring); resumable from the ledger alone.

    Args:
        ledger: the ledger (:class:`Ledger`); its tiles are the work.
        service: the task service (:class:`EarthEngineService` or a stand-in).
        p: parameters.
        out_dir: the stage folder: files go to ``tiles/<tile>.tif``, downloads are staged in ``.gee-staging``.
        max_concurrent: tasks queued or running at once.
        max_attempts: submissions per tile before it stays failed.
        poll_s, max_poll_s: poll interval while things change, and its cap (doubling) while nothing does.
        sleep, clock: time functions (the tests pass instant ones).
        progress: show a tqdm bar (done of total; running, failed, queued in its postfix; ETA).
    """

    def __init__(
        self,
        ledger: Ledger,
        service: TaskService,
        p: dict[str, Any],
        out_dir: str | os.PathLike[str],
        *,
        max_concurrent: int = MAX_CONCURRENT,
        max_attempts: int = MAX_ATTEMPTS,
        poll_s: float = POLL_S,
        max_poll_s: float = MAX_POLL_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: bool = True,
    ) -> None:
        for name, value in (("max_concurrent", max_concurrent), ("max_attempts", max_attempts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(name, f"expected a positive int, got {value!r}")
        if not 0 < poll_s <= max_poll_s:
            raise ParameterError("poll_s", f"expected 0 < poll_s <= max_poll_s, got {poll_s}, {max_poll_s}")
        self.ledger, self.service, self.p = ledger, service, p
        self.out = Path(out_dir)
        self.staging = self.out / ".gee-staging"
        self.max_concurrent, self.max_attempts = max_concurrent, max_attempts
        self.poll_s, self.max_poll_s, self.sleep, self.clock = poll_s, max_poll_s, sleep, clock
        self.progress = progress

    # one step each; every change of state is one ledger transaction

    def _tile(self, row: Any) -> GridTile:
        return GridTile(row.tile, int(row.epsg), (row.left, row.bottom, row.right, row.top))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except LakepaperError:
            raise
        except Exception as exc:
            known = classify(exc)
            if known is None:
                raise
            raise known from exc

    def reconcile(self) -> None:
        """Tiles left ``submitting`` by a crash: adopt the task the server has, or start the request it has not."""
        rows = list(self.ledger.rows("submitting").itertuples())
        if not rows:
            return
        found = self._call(self.service.lookup, [(r.tile, r.request_id) for r in rows])
        for row in rows:
            if row.request_id in found:
                self.ledger.transition(row.tile, "submitted", task_id=found[row.request_id], message=None)
            else:
                self._start(row, row.request_id, int(row.attempt))

    def _start(self, row: Any, request_id: str, attempt: int) -> bool:
        try:
            task_id = self._call(self.service.start, request_id, self._tile(row), self.p)
        except QuotaExceeded as exc:
            self.ledger.transition(row.tile, "planned", request_id=None, attempt=attempt - 1, message=f"quota: {exc}")
            return False
        except CredentialsRevoked:
            raise
        except Exception as exc:  # the server refused this task (a bad request): the tile fails, the run goes on
            self.ledger.transition(row.tile, "failed", message=f"start refused: {type(exc).__name__}: {exc}")
            return True
        self.ledger.transition(row.tile, "submitted", task_id=task_id, message=None)
        return True

    def submit(self) -> tuple[int, bool]:
        """Start planned tiles while fewer than ``max_concurrent`` are active; (started, quota hit)."""
        counts = self.ledger.counts()
        room = self.max_concurrent - sum(counts[s] for s in ACTIVE)
        started = 0
        if room <= 0:
            return 0, False
        for row in self.ledger.rows("planned").head(room).itertuples():
            request_id = self._call(self.service.new_task_id)
            attempt = int(row.attempt) + 1
            self.ledger.transition(
                row.tile, "submitting", request_id=request_id, task_id=None, attempt=attempt, message=None
            )
            if not self._start(row, request_id, attempt):
                return started, True
            started += 1
        return started, False

    def poll(self) -> int:
        """Query the active tasks; move each tile to its task's state. The number of tiles that changed."""
        changed = 0
        rows = self.ledger.rows("submitted", "running")
        for chunk in _chunks(list(rows.itertuples()), STATUS_BATCH):
            found = self._call(self.service.status, [r.task_id for r in chunk])
            for row, st in zip(chunk, found, strict=True):
                state = st.get("state", "UNKNOWN")
                if state in EE_STATES:
                    new = EE_STATES[state]
                    if new != row.state:
                        self.ledger.transition(row.tile, new)
                        changed += 1
                elif state in ("FAILED", "CANCELLED", "UNKNOWN"):
                    why = {
                        "FAILED": f"task {row.task_id} failed: {st.get('error_message', 'no message')}",
                        "CANCELLED": f"task {row.task_id} was cancelled",
                        "UNKNOWN": f"task {row.task_id} disappeared from the server (state UNKNOWN)",
                    }[state]
                    self.ledger.transition(row.tile, "failed", message=why)
                    changed += 1
        return changed

    def collect(self) -> int:
        """Download, verify and place every completed tile. The number of tiles that changed."""
        changed = 0
        self.staging.mkdir(parents=True, exist_ok=True)
        for row in self.ledger.rows("completed", "downloaded").itertuples():
            tile = self._tile(row)
            staged = self.staging / f"{tile.name}.{row.task_id}.tif"
            final = self.out / "tiles" / f"{tile.name}.tif"
            try:
                if row.state == "completed" or not staged.is_file():
                    with io.atomic_path(staged) as tmp:
                        status = {"id": row.task_id, "state": "COMPLETED"}
                        self._call(self.service.fetch, status, tile, tmp)
                    self.ledger.transition(row.tile, "downloaded")
                verify_export(staged, tile, self.p)
                with io.atomic_path(final) as tmp:
                    shutil.copyfile(staged, tmp)
                    tag_export(tmp, tile, self.p, row.task_id)
                clear, mean = check_contract(final, tile, self.p)
            except CredentialsRevoked:
                raise
            except Exception as exc:  # a failed download or a file that is not the tile's: retried (bounded)
                why = str(exc) if isinstance(exc, InputError) else f"download failed: {type(exc).__name__}: {exc}"
                self.ledger.transition(row.tile, "failed", message=why)
                staged.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
                changed += 1
                continue
            self.ledger.transition(row.tile, "verified", clear_share=clear, mean_count=mean, message=None)
            staged.unlink(missing_ok=True)
            changed += 1
        return changed

    def retry(self) -> int:
        """Failed tiles with submissions left go back to ``planned``. The number requeued."""
        rows = self.ledger.rows("failed")
        again = rows[rows.attempt < self.max_attempts]
        for row in again.itertuples():
            self.ledger.transition(row.tile, "planned", request_id=None, task_id=None, message=row.message)
        return len(again)

    def done(self) -> bool:
        """Every tile verified, or failed with no submission left."""
        rows = self.ledger.rows()
        return bool(
            ((rows.state == "verified") | ((rows.state == "failed") & (rows.attempt >= self.max_attempts))).all()
        )

    def run(self, *, max_rounds: int | None = None) -> pd.DataFrame:
        """Loop reconcile / poll / collect / retry / submit until :meth:`done`; the ledger's rows.

        Raises:
            InputError: credentials refused mid-run (naming the credentials file; the ledger keeps
                every tile's state, so a rerun after ``earthengine authenticate`` resumes).
        """
        from tqdm.auto import tqdm

        total = len(self.ledger.rows())
        delay, rounds, errors = self.poll_s, 0, 0
        bar = tqdm(total=total, desc="gee exports", unit="tile", disable=not self.progress)
        try:
            self.reconcile()
            while True:
                try:
                    changed = self.poll() + self.collect() + self.retry()
                    started, quota = self.submit()
                    errors = 0
                except (CredentialsRevoked, QuotaExceeded):
                    raise
                except Exception as exc:  # the network or the service failing for a while: back off, then give up
                    errors += 1
                    if errors > MAX_ERRORS:
                        raise
                    bar.write(f"gee exports: {type(exc).__name__}: {exc}; retrying ({errors}/{MAX_ERRORS})")
                    changed, started, quota = 0, 0, True
                counts = self.ledger.counts()
                bar.n = counts["verified"]
                bar.set_postfix(
                    running=counts["running"] + counts["submitted"] + counts["submitting"],
                    failed=counts["failed"],
                    queued=counts["planned"],
                    refresh=False,
                )
                bar.refresh()
                rounds += 1
                if self.done():
                    shutil.rmtree(self.staging, ignore_errors=True)  # leftovers of killed downloads
                    break
                if max_rounds is not None and rounds >= max_rounds:
                    break
                delay = self.poll_s if (changed or started) and not quota else min(2 * delay, self.max_poll_s)
                self.sleep(delay)
        except CredentialsRevoked as exc:
            raise InputError(
                EE_CREDENTIALS.expanduser(),
                f"Earth Engine refused the credentials mid-run ({exc}); run `earthengine authenticate` and rerun: "
                f"the ledger {self.ledger.path} keeps every tile's state",
            ) from exc
        finally:
            bar.close()
        return self.ledger.rows()


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def progress(ledger: Ledger, *, window: int = 50) -> dict[str, Any]:
    """Done, running, failed, queued, and an ETA in seconds from the rate of the last ``window`` verifications."""
    counts = ledger.counts()
    total = sum(counts.values())
    done = np.sort(ledger.rows("verified").verified_at.dropna().to_numpy())[-window:]
    rate = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else float("nan")
    left = total - counts["verified"]
    return {
        "total": total,
        "done": counts["verified"],
        "running": sum(counts[s] for s in (*ACTIVE, "completed", "downloaded")),
        "failed": counts["failed"],
        "queued": counts["planned"],
        "eta_s": left / rate if rate == rate and rate > 0 else float("nan"),
    }


# --- stage 01's entry point ------------------------------------------------------------------------


def check_era(p: dict[str, Any]) -> None:
    """Refuse dates outside the Sentinel-2 L2A era (:data:`lakepaper.params.S2_ERA`).

    Raises:
        ParameterError: naming ``start_date`` or ``end_date``.
    """
    import datetime as dt

    from lakepaper.params import S2_ERA

    days = {}
    for name in ("start_date", "end_date"):
        try:
            days[name] = dt.date.fromisoformat(str(p[name]))
        except ValueError as exc:
            raise ParameterError(name, f"expected an ISO date like 2017-03-28, got {p[name]!r}") from exc
        if not S2_ERA[0] <= days[name] <= S2_ERA[1]:
            raise ParameterError(
                name, f"{days[name]} is outside the Sentinel-2 L2A era in Earth Engine, {S2_ERA[0]} to {S2_ERA[1]}"
            )
    if days["end_date"] < days["start_date"]:
        raise ParameterError("end_date", f"{days['end_date']} is before start_date {days['start_date']}")


def composite_gee(
    area: Any,
    out_dir: str | os.PathLike[str],
    p: dict[str, Any],
    *,
    ledger: str | os.PathLike[str] | None = None,
    service: TaskService | None = None,
    destination: str = "gcs",
    bucket: str | None = None,
    project: str | None = None,
    max_concurrent: int = MAX_CONCURRENT,
    max_attempts: int = MAX_ATTEMPTS,
    land: str | os.PathLike[str] | None = None,
    windows: int = landgrid.GRID_WINDOWS,
    progress: bool = True,
    **exporter: Any,
) -> pd.DataFrame:
    """Stage 01 from Earth Engine: every land tile of ``area`` exported, verified and placed; one row per tile.

    Writes ``out_dir/tiles/<tile>.tif`` (the contract of :mod:`lakepaper.composite.sources`, with
    the ``edge_px`` margin around each core: tag ``CORE_BOUNDS``) and ``out_dir/tile_grid.gpkg``
    (columns ``tile`` and ``path``, geometry the part of the world each tile owns, plus the grid's
    export columns: :func:`lakepaper.composite.landgrid.build_grid`).

    Args:
        area: ``[minx, miny, maxx, maxy]`` in lon/lat, a polygon file, or None for all land.
        out_dir: the stage folder.
        p: parameters.
        ledger: the ledger file (default ``out_dir/gee_exports.sqlite``); a rerun resumes from it.
        service: the task service (default: :class:`EarthEngineService` with ``destination``,
            ``bucket`` and ``project``; pass one for Drive, which needs ``drive_dir``).
        destination, bucket, project: the default service's (``gcs`` needs ``bucket``; ``url``
            computes each tile through ``getDownloadURL``, for small tiles only).
        max_concurrent, max_attempts: :class:`Exporter`'s.
        land: land polygon file (default the shipped Natural Earth 1:50m land).
        windows: window cores per tile side (:data:`landgrid.GRID_WINDOWS`; smaller for small tests).
        progress: the tqdm bar.
        **exporter: further :class:`Exporter` arguments (``poll_s``, ``max_poll_s``, ``sleep``, ``clock``).

    Returns:
        One row per tile: tile, path, state, task_id, attempt, clear_share, mean_count, message.

    Raises:
        ParameterError: an area outside Sentinel-2's extent, dates outside its era, a bad parameter
            (nothing written, no ledger touched).
        InputError: an unusable ledger; credentials refused mid-run; tiles failed after
            ``max_attempts`` submissions (the message lists them; the ledger keeps their errors).
    """
    check_era(p)
    out = Path(out_dir)
    grid = landgrid.build_grid(p, area=area, land=land, windows=windows)
    if grid.empty:
        raise ParameterError("area", f"{area!r}: no land tile (the area lies over the sea)")
    if service is None:  # credentials first: a run that cannot start leaves no ledger behind
        service = EarthEngineService(
            p, destination=destination, bucket=bucket, project=project, staging=out / ".gee-url"
        )
    book = Ledger(ledger or out / "gee_exports.sqlite", p)
    try:
        book.plan(tiles_of(grid))
        rows = Exporter(
            book,
            service,
            p,
            out,
            max_concurrent=max_concurrent,
            max_attempts=max_attempts,
            progress=progress,
            **exporter,
        ).run()
    finally:
        book.close()
    rows = rows[rows.tile.isin(set(grid.tile))]
    failed = rows[rows.state != "verified"]
    if len(failed):
        listed = "; ".join(f"{r.tile}: {r.message}" for r in failed.head(5).itertuples())
        raise InputError(
            ledger or out / "gee_exports.sqlite",
            f"{len(failed)} of {len(rows)} tiles not verified after {max_attempts} submissions ({listed}); "
            "rerun with a larger max_attempts to retry them",
        )
    landgrid.write_grid(grid, out / "tile_grid.gpkg")
    summary = rows[["tile", "state", "task_id", "attempt", "clear_share", "mean_count", "message"]].copy()
    summary.insert(1, "path", [f"tiles/{t}.tif" for t in summary.tile])
    return summary.reset_index(drop=True)


def dry_run(
    p: dict[str, Any], area: Any = None, *, land: str | None = None, windows: int = landgrid.GRID_WINDOWS
) -> str:
    """What an export of ``area`` would be (tiles, pixels, volume), without credentials; as text."""
    check_era(p)
    started = time.perf_counter()
    grid = landgrid.build_grid(p, area=area, land=land, windows=windows)
    text = landgrid.format_summary(landgrid.summary(grid, p))
    return f"{text}\ngrid computed in {time.perf_counter() - started:.1f} s"


def read_grid(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """A grid written by :func:`landgrid.write_grid` (e.g. to export a chosen subset of tiles)."""
    return gpd.read_file(path)
