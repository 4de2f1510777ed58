"""Earth Engine without a server: the one place the tests initialise ``ee`` offline.

earthengine-api ships, for its own tests, a snapshot of the server's algorithm list
(``ee/tests/algorithms.json``) and ``ee/apitestcase.py``, whose ``GetAlgorithms`` reads that
snapshot. With ``ee.data.getAlgorithms`` pointed at it, ``ee.Initialize`` builds every ``ee.Image``
/ ``ee.ImageCollection`` method locally, so a graph can be constructed and serialised with no
credentials and no network. Every call that would reach a server is replaced by one that raises
(or, for download ids, records its request), so a test can never hang on a socket.

Usage::

    with offline_ee() as calls:
        graph = gee.composite_image(tile, p).serialize()
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ee
import numpy as np
from ee import apitestcase

#: The algorithm snapshot shipped in the earthengine-api wheel (see the pin in pyproject.toml).
ALGORITHMS_JSON = Path(ee.__file__).parent / "tests" / "algorithms.json"

#: Project name given to the offline initialisation (never sent anywhere).
OFFLINE_PROJECT = "lakepaper-offline"

# (module, attribute) of every ee.data / ee.deprecation hook replaced while offline.
_HOOKS = (
    (ee.data, "_install_cloud_api_resource"),
    (ee.data, "getAlgorithms"),
    (ee.data, "computeValue"),
    (ee.data, "getDownloadId"),
    (ee.data, "getMapId"),
    (ee.deprecation, "_FetchDataCatalogStac"),
)


def algorithms() -> dict[str, dict[str, Any]]:
    """The shipped algorithm list: name (without ``algorithms/``) -> its entry (``arguments`` etc.)."""
    raw = json.loads(ALGORITHMS_JSON.read_text(encoding="utf-8"))
    return {a["name"].removeprefix("algorithms/"): a for a in raw["algorithms"]}


def _no_server(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("offline Earth Engine: this call would contact the server")


@contextlib.contextmanager
def offline_ee() -> Iterator[list[dict[str, Any]]]:
    """Initialise ``ee`` from the shipped algorithm snapshot; restore everything on exit.

    Yields:
        A list that collects the parameters of every ``ee.data.getDownloadId`` request made
        inside the block (the request is answered with a fake id).
    """
    calls: list[dict[str, Any]] = []
    saved = [(mod, name, getattr(mod, name)) for mod, name in _HOOKS]

    def fake_download_id(params: dict[str, Any]) -> dict[str, str]:
        calls.append(params)
        return {"docid": "projects/offline/thumbnails/fake", "token": ""}

    ee.Reset()
    ee.data._install_cloud_api_resource = lambda: None
    ee.data.getAlgorithms = apitestcase.GetAlgorithms
    ee.data.computeValue = _no_server
    ee.data.getDownloadId = fake_download_id
    ee.data.getMapId = _no_server
    ee.deprecation._FetchDataCatalogStac = dict  # the deprecated-asset list: an empty one
    try:
        ee.Initialize(None, "", project=OFFLINE_PROJECT)
        yield calls
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)
        ee.Reset()


# --- a stand-in for Earth Engine's task service (the export orchestrator's tests) -------------------


class StandInTaskService:
    """A local task service that answers as Earth Engine's does, for :mod:`lakepaper.composite.exports`.

    Tasks are Cloud API *operations* (``{"name": "projects/<p>/operations/<id>", "metadata": {"state":
    "PENDING" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED", "description", "createTime", ...},
    "done", "error"}``), the shape ``ee.data.getOperation`` returns; :meth:`status` converts them with
    the client's own ``ee._cloud_api_utils.convert_operation_to_task`` and answers ``{"id", "state":
    "UNKNOWN", "name"}`` for an id the server does not know, exactly as ``ee.data.getTaskStatus`` does.
    The server names each task itself (an operation id unlike the request id, as in earthengine-api's
    own ``batch_test``); a request id sent twice is refused, every start is logged in :attr:`starts`
    (tile, task id) so a test can count submissions per tile, and :meth:`lookup` finds tasks by their
    description, as ``ee.data.listOperations`` would.

    Each :meth:`status` call moves each task one step: PENDING -> RUNNING -> SUCCEEDED, when it
    "exports" a real GeoTIFF (int16 bands with descriptions, on the tile's export grid, as Earth
    Engine writes them: no tags, no nodata) into :attr:`bucket`.

    Misbehaviour, per tile name in ``script`` (applied to that tile's first ``n`` tasks):
    ``("fail", n)`` FAILED with an error message; ``("cancel", n)`` CANCELLED; ``("vanish", n)``
    the operation disappears while running (state UNKNOWN); ``("wrong_shape", n)`` the file is 10 px
    short. ``max_queued``: a start beyond that many PENDING or RUNNING tasks raises Earth Engine's
    quota error. ``revoke()``: every later call raises google-auth's ``RefreshError``.
    """

    def __init__(self, bucket: Path, p: dict[str, Any], *, max_queued: int = 1000, script=None, seed: int = 0):
        import random

        self.bucket, self.p, self.max_queued = Path(bucket), p, max_queued
        self.bucket.mkdir(parents=True, exist_ok=True)
        self.script = dict(script or {})
        self.ops: dict[str, dict[str, Any]] = {}
        self.tiles: dict[str, Any] = {}
        self.starts: list[tuple[str, str]] = []  # (tile, task id) of every task created
        self.requests: set[str] = set()
        self.revoked = False
        self.rng = random.Random(seed)
        self.clock = 1_700_000_000.0

    def _auth(self) -> None:
        if self.revoked:
            import google.auth.exceptions

            raise google.auth.exceptions.RefreshError("invalid_grant: Token has been expired or revoked.")

    def revoke(self) -> None:
        self.revoked = True

    def _time(self) -> str:
        import datetime as dt

        self.clock += 1.0
        return dt.datetime.fromtimestamp(self.clock, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def new_task_id(self) -> str:
        self._auth()
        return "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(24))

    def _misbehaves(self, tile: str, kind: str) -> bool:
        what = self.script.get(tile)
        if not what or what[0] != kind:
            return False
        return sum(1 for t, _ in self.starts if t == tile) <= what[1]

    def start(self, request_id: str, tile, p: dict[str, Any]) -> str:
        from lakepaper.composite.exports import description

        self._auth()
        if request_id in self.requests:
            raise ee.EEException(f"Request ID {request_id} has already been used.")
        queued = sum(1 for op in self.ops.values() if op["metadata"]["state"] in ("PENDING", "RUNNING"))
        if queued >= self.max_queued:
            raise ee.EEException(
                f"Too many tasks already in the queue ({self.max_queued}). Please wait for some of them to complete."
            )
        now = self._time()
        self.requests.add(request_id)
        task_id = self.new_task_id()  # the server's own name for the task
        self.starts.append((tile.name, task_id))
        self.tiles[task_id] = tile
        self.ops[task_id] = {
            "name": f"projects/{OFFLINE_PROJECT}/operations/{task_id}",
            "metadata": {
                "@type": "type.googleapis.com/google.earthengine.v1alpha.OperationMetadata",
                "state": "PENDING",
                "description": description(tile.name, request_id),
                "type": "EXPORT_IMAGE",
                "createTime": now,
                "updateTime": now,
                "attempt": 1,
            },
        }
        return task_id

    def lookup(self, wanted) -> dict[str, str]:
        from ee import _cloud_api_utils

        from lakepaper.composite.exports import description

        self._auth()
        names = {description(t, rid): rid for t, rid in wanted}
        return {
            names[op["metadata"]["description"]]: _cloud_api_utils.convert_operation_name_to_task_id(op["name"])
            for op in self.ops.values()
            if op["metadata"]["description"] in names
        }

    def _step(self, task_id: str) -> None:
        op = self.ops[task_id]
        meta, tile = op["metadata"], self.tiles[task_id]
        meta["updateTime"] = self._time()
        if meta["state"] == "PENDING":
            meta["state"], meta["startTime"] = "RUNNING", meta["updateTime"]
            if self._misbehaves(tile.name, "cancel"):
                meta["state"], op["done"] = "CANCELLED", True
            return
        if meta["state"] != "RUNNING":
            return
        if self._misbehaves(tile.name, "vanish"):
            del self.ops[task_id]
            return
        if self._misbehaves(tile.name, "fail"):
            meta["state"], op["done"] = "FAILED", True
            op["error"] = {"code": 3, "message": "Computation timed out."}
            return
        self._export(tile, short=10 if self._misbehaves(tile.name, "wrong_shape") else 0)
        meta["state"], op["done"] = "SUCCEEDED", True
        meta["destinationUris"] = [f"https://storage.example/{self.bucket.name}/{tile.name}.tif"]

    def _export(self, tile, short: int = 0) -> None:
        import rasterio

        crs, transform, (width, height) = tile.export_grid(self.p)
        bands = [*self.p["composite_bands"], "clear_count"]
        data = np.zeros((len(bands), height - short, width), np.int16)
        data[: len(bands) - 1] = 123
        data[-1] = 5
        data[:-1, 0, :] = -32768
        data[-1, 0, :] = 0
        with rasterio.open(
            self.bucket / f"{tile.name}.tif",
            "w",
            driver="GTiff",
            width=width,
            height=height - short,
            count=len(bands),
            dtype="int16",
            crs=crs,
            transform=transform,
        ) as dst:
            dst.write(data)
            for i, name in enumerate(bands, start=1):
                dst.set_band_description(i, name)

    def status(self, task_ids) -> list[dict[str, Any]]:
        from ee import _cloud_api_utils

        self._auth()
        out = []
        for task_id in task_ids:
            if task_id in self.ops:
                self._step(task_id)
            if task_id not in self.ops:
                name = f"projects/{OFFLINE_PROJECT}/operations/{task_id}"
                out.append({"id": task_id, "state": "UNKNOWN", "name": name})
            else:
                out.append(_cloud_api_utils.convert_operation_to_task(self.ops[task_id]))
        return out

    def fetch(self, status: dict[str, Any], tile, dest: Path) -> None:
        self._auth()
        import shutil

        shutil.copyfile(self.bucket / f"{tile.name}.tif", dest)
