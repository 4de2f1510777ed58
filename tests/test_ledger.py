"""Stage 01 from Earth Engine at scale: the export ledger and orchestrator, offline (``pytest -k ledger``).

The orchestrator (:mod:`lakepaper.composite.exports`) is driven through ``ee_offline.StandInTaskService``,
a local task service that answers in Earth Engine's response shapes (operations converted by the
client's own ``convert_operation_to_task``; UNKNOWN for a task that disappeared), refuses a start
beyond its queue with Earth Engine's quota message, and "exports" real small GeoTIFFs on each tile's
export grid, so that verification and the stage-01 contract are exercised end to end.

One test, marked ``gee``, runs the orchestrator against Earth Engine itself (direct downloads of four
480 m tiles) on a machine with credentials::

    EARTHENGINE_PROJECT=my-project .venv/bin/pytest -m gee tests/test_ledger.py tests/test_composite_gee.py

Tiles are those of the real land grid (:mod:`lakepaper.composite.landgrid`) over a small box near
Berlin, with one window per tile (48 px cores at the tiny profile's 64 px windows), so each export is
64 x 64 px.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ee")

from ee_offline import StandInTaskService  # noqa: E402

from lakepaper import params  # noqa: E402
from lakepaper.composite import exports, landgrid  # noqa: E402
from lakepaper.composite.local import read_composite  # noqa: E402
from lakepaper.errors import InputError, ParameterError  # noqa: E402

#: ~1.4 x 1.1 km near Berlin: a dozen 480 m tiles.
AREA = [13.60, 52.40, 13.62, 52.41]
FAST = {"poll_s": 0.01, "max_poll_s": 0.08, "progress": False}


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it and tidy up)."""


@pytest.fixture(scope="module")
def p():
    return params.resolve("tiny", start_date="2021-06-01", end_date="2021-08-31")


@pytest.fixture(scope="module")
def grid(p):
    return landgrid.build_grid(p, area=AREA, windows=1)


def _service(tmp_path: Path, p, **kw) -> StandInTaskService:
    return StandInTaskService(tmp_path / "bucket", p, **kw)


def _run(service, p, out: Path, grid, *, sleeps=None, **kw) -> tuple[exports.Ledger, exports.Exporter]:
    ledger = exports.Ledger(out / "gee_exports.sqlite", p, durable=False)  # the kills are the process's, not power cuts
    ledger.plan(exports.tiles_of(grid))
    sleep = (lambda s: sleeps.append(s)) if sleeps is not None else (lambda s: None)
    ex = exports.Exporter(ledger, service, p, out, sleep=sleep, **{**FAST, **kw})
    return ledger, ex


def _starts_per_tile(service) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tile, _ in service.starts:
        counts[tile] = counts.get(tile, 0) + 1
    return counts


def test_ledger_grid_is_a_dozen_tiles(grid):
    assert 6 <= len(grid) <= 30 and grid.tile.is_unique
    assert set(grid.epsg) == {32633}


def test_ledger_end_to_end_through_composite_gee(tmp_path, p, grid):
    """The lead's entry point: every tile exported once, verified, in the contract; tile_grid.gpkg written."""
    service = _service(tmp_path, p, max_queued=1000)
    cap = 4
    active = []
    start = service.start

    def counting_start(request_id, tile, q):
        task_id = start(request_id, tile, q)
        active.append(sum(1 for op in service.ops.values() if op["metadata"]["state"] in ("PENDING", "RUNNING")))
        return task_id

    service.start = counting_start
    out = tmp_path / "01_composite"
    rows = exports.composite_gee(
        AREA, out, p, service=service, max_concurrent=cap, windows=1, progress=False, poll_s=0.01, sleep=lambda s: None
    )
    assert list(rows.tile) == sorted(grid.tile) and (rows.state == "verified").all()
    assert max(active) <= cap  # never more than max_concurrent queued or running
    assert set(_starts_per_tile(service).values()) == {1}
    for r in rows.itertuples():
        data, count, meta = read_composite(out / r.path)
        assert meta["band_names"] == list(p["composite_bands"]) and meta["tags"]["SOURCE"] == "gee"
        assert meta["tags"]["TILE"] == r.tile and data.shape[1:] == (64, 64)
        assert np.isnan(data[:, 0]).all() and count[0].max() == 0 and count[1:].min() == 5
        assert r.clear_share == pytest.approx(63 / 64) and r.mean_count == pytest.approx(5 * 63 / 64)
    import geopandas as gpd

    written = gpd.read_file(out / "tile_grid.gpkg")
    assert list(written.tile) == list(grid.tile) and list(written.path) == [f"tiles/{t}.tif" for t in grid.tile]
    assert not (out / ".gee-staging").exists()
    # a rerun finds everything verified: no new task
    again = exports.composite_gee(AREA, out, p, service=service, windows=1, progress=False, sleep=lambda s: None)
    assert (again.state == "verified").all() and len(service.starts) == len(grid)


def test_ledger_retries_failed_cancelled_vanished_and_misshapen_tasks(tmp_path, p, grid):
    names = sorted(grid.tile)
    script = {
        names[0]: ("fail", 1),
        names[1]: ("cancel", 1),
        names[2]: ("vanish", 1),
        names[3]: ("wrong_shape", 1),
    }
    service = _service(tmp_path, p, script=script)
    ledger, ex = _run(service, p, tmp_path / "out", grid)
    rows = ex.run().set_index("tile")
    assert (rows.state == "verified").all()
    starts = _starts_per_tile(service)
    assert all(starts[t] == 2 for t in script) and all(starts[t] == 1 for t in names[4:])
    events = ledger.events()
    failed = events[events.state == "failed"].set_index("tile").message
    assert "Computation timed out" in failed[names[0]]
    assert "cancelled" in failed[names[1]]
    assert "disappeared" in failed[names[2]] and "UNKNOWN" in failed[names[2]]
    assert "54 px, expected 64 x 64" in failed[names[3]] and f"{names[3]}." in failed[names[3]]  # names the file
    assert not (tmp_path / "out" / "tiles" / f"{names[3]}.tif.partial").exists()


def test_ledger_bounded_retries_end_in_a_clear_error(tmp_path, p, grid):
    bad = sorted(grid.tile)[0]
    service = _service(tmp_path, p, script={bad: ("fail", 99)})
    with pytest.raises(InputError) as err:
        exports.composite_gee(
            AREA, tmp_path / "out", p, service=service, max_attempts=2, windows=1, progress=False, sleep=lambda s: None
        )
    assert (
        err.value.path.endswith("gee_exports.sqlite")
        and bad in str(err.value)
        and "Computation timed out" in str(err.value)
    )
    assert _starts_per_tile(service)[bad] == 2
    assert not (tmp_path / "out" / "tile_grid.gpkg").exists()


def test_ledger_quota_errors_back_off_and_lose_nothing(tmp_path, p, grid):
    service = _service(tmp_path, p, max_queued=2)
    sleeps: list[float] = []
    ledger, ex = _run(service, p, tmp_path / "out", grid, sleeps=sleeps, max_concurrent=50)
    rows = ex.run()
    assert (rows.state == "verified").all() and set(_starts_per_tile(service).values()) == {1}
    quota = ledger.events().message.fillna("").str.startswith("quota: Too many tasks")
    assert quota.any()
    assert max(sleeps) > FAST["poll_s"] and max(sleeps) <= FAST["max_poll_s"]  # backed off, capped


def test_ledger_poll_backs_off_while_nothing_changes(tmp_path, p, grid):
    service = _service(tmp_path, p)
    sleeps: list[float] = []
    ledger, ex = _run(service, p, tmp_path / "out", grid, sleeps=sleeps, max_concurrent=1)
    ex.run(max_rounds=1)
    # a task that stays RUNNING: the delays double up to the cap
    (task_id,) = ledger.rows("submitted").task_id
    service._step = lambda t: None
    sleeps.clear()
    ex.run(max_rounds=6)
    assert sleeps == [0.02, 0.04, 0.08, 0.08, 0.08]  # poll_s 0.01 doubled each quiet round, capped at 0.08


def _kill_switch(monkeypatch, service, at: int, rng: random.Random) -> list[int]:
    """Raise Killed on the ``at``-th step: before or after any service call or ledger transaction."""
    ticks = [0]

    def tick():
        ticks[0] += 1
        if ticks[0] == at:
            raise Killed(at)

    def wrap(fn):
        def wrapped(*a, **k):
            tick()
            out = fn(*a, **k)
            tick()  # the call succeeded (the server accepted) and the process died before recording it
            return out

        return wrapped

    for name in ("new_task_id", "start", "lookup", "status", "fetch"):
        monkeypatch.setattr(service, name, wrap(getattr(service, name)))
    monkeypatch.setattr(exports.Ledger, "transition", wrap(exports.Ledger.transition))
    return ticks


def test_ledger_kill_and_resume_submits_no_tile_twice(tmp_path, p, grid, monkeypatch):
    """Twelve random kill points (plus one run killed four times): no tile started twice, none lost."""
    # the number of steps of an uninterrupted run, to draw kill points from
    ref = _service(tmp_path / "ref", p, max_queued=5)
    with monkeypatch.context() as m:
        ticks = _kill_switch(m, ref, at=-1, rng=random.Random(0))
        _run(ref, p, tmp_path / "ref", grid, max_concurrent=4)[1].run()
        total = ticks[0]
    assert total > 100
    rng = random.Random(18)
    points = [[k] for k in sorted(rng.sample(range(1, total), 12))] + [sorted(rng.sample(range(1, total // 2), 4))]
    for n, kills in enumerate(points):
        service = _service(tmp_path / f"k{n}", p, max_queued=5, seed=n)
        out = tmp_path / f"k{n}" / "out"
        for at in kills:
            with monkeypatch.context() as m:
                _kill_switch(m, service, at, rng)
                with pytest.raises(Killed):
                    _run(service, p, out, grid, max_concurrent=4)[1].run()
        ledger, ex = _run(service, p, out, grid, max_concurrent=4)  # resumed from the ledger alone
        rows = ex.run()
        assert (rows.state == "verified").all(), (kills, rows.state.value_counts())
        assert _starts_per_tile(service) == dict.fromkeys(grid.tile, 1), kills
        assert sorted(f.stem for f in (out / "tiles").glob("*.tif")) == sorted(grid.tile)
        assert ledger.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ledger.close()


# --- bad input: a clear message, the ledger unharmed ----------------------------------------------


@pytest.mark.bad_input
def test_ledger_area_outside_sentinel2_is_refused_before_any_ledger(tmp_path, p):
    for area in ([0.0, -75.0, 10.0, -70.0], [10.0, 85.0, 20.0, 88.0]):
        with pytest.raises(ParameterError) as err:
            exports.composite_gee(area, tmp_path / "out", p, service=object(), windows=1, progress=False)
        assert err.value.name == "area" and "Sentinel-2" in str(err.value)
    with pytest.raises(ParameterError) as err:
        exports.composite_gee(AREA, tmp_path / "out", {**p, "start_date": "2015-07-01"}, windows=1, progress=False)
    assert err.value.name == "start_date" and "era" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
def test_ledger_unwritable_or_foreign_ledger_is_named_and_left_alone(tmp_path, p, grid, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError) as err:
        exports.Ledger(blocker / "gee_exports.sqlite", p)
    assert err.value.path == str(blocker / "gee_exports.sqlite")
    with pytest.raises(InputError, match="is a folder"):
        exports.Ledger(tmp_path, p)
    foreign = tmp_path / "notes.sqlite"
    foreign.write_bytes(b"these are my notes, not a database" * 10)
    with pytest.raises(InputError) as err:
        exports.Ledger(foreign, p)
    assert err.value.path == str(foreign) and foreign.read_bytes() == b"these are my notes, not a database" * 10
    good = tmp_path / "ledger.sqlite"
    exports.Ledger(good, p).plan(exports.tiles_of(grid))
    before = good.read_bytes()
    with pytest.raises(InputError, match="other composite parameters"):
        exports.Ledger(good, {**p, "cloud_buffer_m": 50.0})
    assert good.read_bytes() == before
    # a read-only ledger (a read-only mount; root ignores file modes, so SQLite's read-only mode stands in)
    real_connect = sqlite3.connect
    monkeypatch.setattr(
        exports.sqlite3, "connect", lambda path, **kw: real_connect(f"file:{path}?mode=ro", uri=True, **kw)
    )
    with pytest.raises(InputError, match="readonly") as err:
        exports.Ledger(good, p)
    assert err.value.path == str(good) and good.read_bytes() == before


@pytest.mark.bad_input
def test_ledger_revoked_credentials_stop_the_run_and_a_rerun_resumes(tmp_path, p, grid):
    service = _service(tmp_path, p, max_queued=5)
    out = tmp_path / "out"
    ledger, ex = _run(service, p, out, grid, max_concurrent=3)
    ex.run(max_rounds=3)
    service.revoke()
    with pytest.raises(InputError) as err:
        ex.run()
    assert "credentials" in str(err.value) and "earthengine authenticate" in str(err.value)
    assert str(ledger.path) in str(err.value)
    states = ledger.rows().state
    assert states.isin(exports.STATES).all() and ledger.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (states == "verified").sum() < len(grid)  # stopped mid-run
    ledger.close()
    service.revoked = False  # `earthengine authenticate`
    ledger, ex = _run(service, p, out, grid, max_concurrent=3)
    assert (ex.run().state == "verified").all()
    assert _starts_per_tile(service) == dict.fromkeys(grid.tile, 1)


def test_ledger_progress_view(tmp_path, p, grid):
    service = _service(tmp_path, p)
    clock = iter(range(10_000))
    ledger = exports.Ledger(tmp_path / "l.sqlite", p, clock=lambda: float(next(clock)))
    ledger.plan(exports.tiles_of(grid))
    ex = exports.Exporter(ledger, service, p, tmp_path / "out", max_concurrent=2, sleep=lambda s: None, **FAST)
    ex.run(max_rounds=6)
    view = exports.progress(ledger)
    assert view["total"] == len(grid) and 0 < view["done"] < len(grid)
    assert view["done"] + view["running"] + view["failed"] + view["queued"] == len(grid)
    assert view["eta_s"] > 0


# --- the real service's wiring, offline; and a real run with credentials ---------------------------


def test_ledger_earth_engine_service_sends_request_id_and_description(p, grid, monkeypatch):
    import ee
    from ee_offline import offline_ee

    tile = exports.tiles_of(grid)[0]
    with offline_ee():
        sent = []

        def export_image(request_id, params):
            sent.append((request_id, params))
            return {"name": "projects/lakepaper-offline/operations/SERVERNAMED"}

        monkeypatch.setattr(ee.data, "exportImage", export_image)
        service = exports.EarthEngineService(p, destination="gcs", bucket="my-bucket", initialise=False)
        assert service.start("REQ1", tile, p) == "SERVERNAMED"  # the server's task id, not the request id
        request_id, body = sent[0]
        assert request_id == "REQ1" and body["description"] == exports.description(tile.name, "REQ1")
        destination = body["fileExportOptions"]["cloudStorageDestination"]
        assert destination["bucket"] == "my-bucket" and destination["filenamePrefix"] == f"lakepaper/{tile.name}"
        side = 48 + 2 * p["edge_px"]
        assert body["maxPixels"] == {"value": str(side * side)}
        operations = [
            {
                "name": "projects/lakepaper-offline/operations/SERVERNAMED",
                "metadata": {"description": body["description"]},
            },
            {"name": "projects/lakepaper-offline/operations/OTHER", "metadata": {"description": "someone else's"}},
        ]
        monkeypatch.setattr(ee.data, "listOperations", lambda: operations)
        assert service.lookup([(tile.name, "REQ1"), (tile.name, "REQ2")]) == {"REQ1": "SERVERNAMED"}

        def full(request_id, params):
            raise ee.EEException(
                "Too many tasks already in the queue (3000). Please wait for some of them to complete."
            )

        monkeypatch.setattr(ee.data, "exportImage", full)
        with pytest.raises(exports.QuotaExceeded):
            service.start("REQ3", tile, p)


@pytest.mark.gee
def test_ledger_real_earth_engine_run(tmp_path, p):
    """With credentials (project from EARTHENGINE_PROJECT): four 480 m tiles over Mueggelsee, direct downloads."""
    import os

    from lakepaper.composite import gee

    if not gee.credentials_available():
        pytest.skip("no Earth Engine credentials: skipped real export")
    try:
        service = exports.EarthEngineService(
            p, destination="url", staging=tmp_path / "url", project=os.environ.get("EARTHENGINE_PROJECT")
        )
    except InputError as exc:
        pytest.skip(f"no Earth Engine credentials: skipped real export ({exc})")
    rows = exports.composite_gee(
        [13.645, 52.435, 13.655, 52.44], tmp_path / "out", p, service=service, windows=1, progress=False, poll_s=1.0
    )
    assert len(rows) >= 1 and (rows.state == "verified").all() and (rows.clear_share > 0.5).all()


def test_ledger_transient_errors_refused_starts_and_lost_files(tmp_path, p, grid):
    """A flaky network backs off and goes on; a task the server refuses, or a file gone from the bucket,
    fails that tile (retried, bounded), not the run."""
    import ee

    names = sorted(grid.tile)
    service = _service(tmp_path, p)
    status, start, fetch = service.status, service.start, service.fetch
    flaky = iter([ConnectionError("connection reset by peer")] * 3)

    def flaky_status(ids):
        err = next(flaky, None)
        if err is not None:
            raise err
        return status(ids)

    def picky_start(request_id, tile, q):
        if tile.name == names[0]:
            raise ee.EEException("Image.clip: Geometry is invalid.")
        return start(request_id, tile, q)

    lost = set()

    def lossy_fetch(st, tile, dest):
        if tile.name == names[1] and tile.name not in lost:
            lost.add(tile.name)
            raise FileNotFoundError(f"gs://bucket/{tile.name}.tif")
        return fetch(st, tile, dest)

    service.status, service.start, service.fetch = flaky_status, picky_start, lossy_fetch
    sleeps: list[float] = []
    ledger, ex = _run(service, p, tmp_path / "out", grid, sleeps=sleeps, max_attempts=2)
    rows = ex.run().set_index("tile")
    assert rows.loc[names[0], "state"] == "failed" and "Geometry is invalid" in rows.loc[names[0], "message"]
    assert rows.loc[names[0], "attempt"] == 2
    assert (rows.drop(names[0]).state == "verified").all()
    messages = ledger.events().message.fillna("")
    assert messages.str.contains(f"download failed: FileNotFoundError: gs://bucket/{names[1]}.tif").any()
    assert not (tmp_path / "out" / "tiles" / f"{names[0]}.tif").exists()
    assert next(flaky, None) is None and sleeps.count(0.02) >= 1  # the errors happened; the run backed off
    ledger.close()
