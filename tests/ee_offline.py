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
