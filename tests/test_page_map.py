"""The paper page's interactive map (lakepaper.report.map, issue 22).

Reads the small build of tests/test_explore.py (:func:`make_map_build`: two tiles, four lakes with known
stories). Checks what the section embeds (Leaflet inlined with its licence, the composites as data URIs, the
lakes as compact GeoJSON that decodes to the product's outlines), that it stays within its byte budget, that
the page builder puts it in (and leaves it out of a build without composites), and in headless Chromium
that the map renders, a click on a known lake opens its inspector with that lake's attributes, the console
stays clean, and with scripts off the composites' gallery stands in for it. Browser tests skip, saying why,
where Chromium cannot be had (``.ci/install-browser``).
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import shapely
from builders import chromium_or_skip
from PIL import Image
from test_explore import LAKES, lake_point, make_map_build

from lakepaper.explore import Build
from lakepaper.report import map as page_map
from lakepaper.report.build import build_paper


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(build folder, the page built from it)."""
    root = tmp_path_factory.mktemp("pagemap")
    b = make_map_build(root)
    return b, build_paper("tiny", root=b)


def _section(page: str) -> str:
    i = page.index(f"<h2 id='{page_map.SECTION_ID}-title'>")
    return page[i : page.index("</section>", i) + len("</section>")]


def _data(section: str) -> dict:
    m = re.search(rf"<script type='application/json' id='{page_map.SECTION_ID}-data'>(.*?)</script>", section, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_the_section_embeds_leaflet_the_composites_and_the_lakes(built):
    b, page = built
    text = page.read_text(encoding="utf-8")
    section = _section(text)
    assert text.count(f"<section id='{page_map.SECTION_ID}'>") == 1
    assert f"href='#{page_map.SECTION_ID}-title'" in text  # in the table of contents
    # Leaflet inlined, licence named, no source map, no external resource, its images as data URIs
    assert "Leaflet 1.9.4" in section and "BSD-2-Clause" in section and "sourceMappingURL" not in section
    js, _ = page_map.leaflet_assets()
    assert js in section
    # no external resource; Leaflet's own script holds one link, its attribution's (switched off here)
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//|file:)""", section.replace(js, ""))
    assert "attributionControl: false" in section
    assert "url(images/" not in section and "url(data:image/png;base64," in section
    # the gallery: one true-colour image per tile, data URIs
    imgs = re.findall(r"<img src='(data:image/jpeg;base64,[^']+)'[^>]*data-tile='(T\d\d)'", section)
    assert [t for _, t in imgs] == ["T01", "T02"]  # by number of lakes
    data = _data(section)
    assert [t["name"] for t in data["tiles"]] == ["T01", "T02"] and all(
        t["ndwi"].startswith("data:") for t in data["tiles"]
    )
    assert data["focus"]["id"] == 2 and data["focus"]["tile"] == "T01"  # the largest lake of the first tile
    props = {f["p"]["id"]: f["p"] for f in data["layers"]["product"]}
    assert sorted(props) == [1, 2, 3, 4]
    rules = [data["rules"][i] for i in props[1]["rules"]]  # each sentence once in the page, numbered
    assert props[1]["source"] == "prediction" and any("case a" in r for r in rules)
    assert props[1]["glakes"] == 9 and props[1]["pld"] is None and props[1]["truth"].startswith("truth lake 100001")
    assert len(data["layers"]["glakes"]) == 3 and len(data["layers"]["pld"]) == 1 and "truth" not in data["layers"]


def test_the_compact_outlines_decode_to_the_products(built):
    b, page = built
    data = _data(_section(page.read_text(encoding="utf-8")))
    product = Build("tiny", b).product().set_index("id")
    for f in data["layers"]["product"]:
        back = page_map.decode_geometry(f["c"])
        original = product.geometry.loc[f["p"]["id"]]
        # within the simplification (5 m) plus rounding (1e-5 degrees): < 1e-4 degrees
        assert shapely.hausdorff_distance(back, original) < 1e-4
        assert abs(back.area - original.area) / original.area < 0.05


def test_tiles_are_added_while_they_fit_the_budget(built):
    b, _ = built
    build = Build("tiny", b)
    tiles = page_map.pick_tiles(build)
    assert [t for t, _ in tiles] == ["T01", "T02"]
    one = page_map.map_data(build, tiles, budget=1)  # the first tile always
    assert [t["name"] for t in one["tiles"]] == ["T01"] and len(one["layers"]["product"]) == 3
    both = page_map.map_data(build, tiles)
    assert len(json.dumps(both)) < page_map.DATA_BUDGET


def test_the_page_size_grows_by_the_section_only(built, tmp_path):
    b, page = built
    section = _section(page.read_text(encoding="utf-8"))
    # two 128-px tiles: Leaflet (~166 kB) and a few tens of kB of images and lakes
    assert 150_000 < len(section.encode()) < 300_000


def test_no_map_without_composites_and_a_note_when_the_product_is_unreadable(tmp_path):
    assert page_map.map_section(tmp_path / "nothing", "tiny") == ""
    b = make_map_build(tmp_path)
    (b / "05_postprocess" / "lakes.parquet").write_bytes(b"not parquet")
    note = page_map.map_section(b, "tiny")
    assert "not made" in note and "<script" not in note


def test_the_vendored_leaflet_is_the_published_one_with_its_licence():
    readme = (page_map.ASSETS / "README.md").read_text()
    for name, sha in re.findall(r"\| `([^`]+)` \| `dist/[^`]+` \| `([0-9a-f]{64})` \|", readme):
        assert hashlib.sha256((page_map.ASSETS / name).read_bytes()).hexdigest() == sha, name
    assert "BSD 2-Clause License" in (page_map.ASSETS / "LICENSE").read_text()
    assert page_map.LEAFLET_VERSION in readme


# --- in headless Chromium ------------------------------------------------------------------------------


def test_the_map_renders_and_a_click_opens_the_lakes_inspector(built):
    chromium_or_skip()
    b, page = built
    lat, lon = lake_point(1)
    shot = b / "paper" / "map_screenshot.png"  # beside the page's screenshot (paper/screenshot.png)
    m = page_map.check_map(page, screenshot=shot, click=(1, lat, lon))
    assert m.ok, m.problems()
    assert m.tiles == 2 and m.lakes == len(LAKES)
    for expected in (
        "#1 (tile T01)",
        "0.03 km²",
        "prediction",
        "case a",
        "0.90",
        "overlaps lake 9",
        "truth lake 100001",
    ):
        assert expected in m.inspector, (expected, m.inspector)
    with Image.open(shot) as im:
        assert im.width >= 1000 and im.height >= 800
    # a click on a GLAKES-only lake's outline area opens that lake, not the previous one
    lat, lon = lake_point(2)
    m2 = page_map.check_map(page, click=(2, lat, lon))
    assert m2.ok and "#2 (tile T01)" in m2.inspector and "added from GLAKES" in m2.inspector


def test_without_scripts_the_composites_stand_in_for_the_map(built):
    chromium_or_skip()
    _, page = built
    m = page_map.check_map(page, scripts=False, click=None)
    assert m.ok, m.problems()
    assert m.gallery_visible and not m.map_visible and m.tiles == 0
