"""The page's interactive map: the product's lakes over the composites of a few tiles, with a click inspector.

Everything is inlined, as the page's images are: Leaflet's script and style (vendored in
``assets/leaflet/``, see its README; the style's images become data URIs), the tiles' composites (true
colour and NDWI, JPEG data URIs warped to Web Mercator by :func:`lakepaper.explore.render`) and the lakes as
compact GeoJSON (simplified to :data:`SIMPLIFY_M`, coordinates as steps of 10^-:data:`DECIMALS` degrees,
:func:`encode_geometry`, turned back into GeoJSON by the script). The inspector
shows what :func:`lakepaper.explore.lake_records` gives a lake: area, source, the rules that touched it and
why, the GLAKES and PLD lakes it overlaps and, on the simulated world, its truth.

Progressive enhancement: the section holds a gallery of the tiles' true-colour composites as plain images
(what a reader without scripts sees, beside Fig. 8's static maps); the script takes those images for its
overlays, hides the gallery and shows the map. No network, no external resource.

:func:`map_html` is the section; the page builder (:func:`lakepaper.report.html.render`) calls it and leaves
the section out when the build has no composite or no product.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from lakepaper.errors import InputError
from lakepaper.explore import STYLES, Build, in_bounds, lake_records, render

LEAFLET_VERSION = "1.9.4"
ASSETS = Path(__file__).parent / "assets" / "leaflet"
#: Tiles on the map, at most (Fig. 8's tiles on the simulated world, else those with most lakes).
MAX_TILES = 4
#: Longest side of each embedded composite image, pixels.
IMAGE_PX = 384
#: Bytes of images and lakes the map may add to the page (Leaflet's ~165 kB besides): tiles are added while
#: they fit (:func:`map_data`).
DATA_BUDGET = 900_000
#: Simplification tolerance of the product's outlines (half a 10 m pixel) and of the other catalogues' (a
#: pixel: their outlines trace pixels), metres.
SIMPLIFY_M = 5.0
SIMPLIFY_REFERENCE_M = 10.0
#: Decimals kept in the coordinates (1e-5 degrees is about a metre).
DECIMALS = 5
SECTION_ID = "lake-map"
TITLE = "Explore the product on a map"


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's script (without its source-map comment) and style (images as data URIs)."""
    js = (ASSETS / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
    if re.search(r"</script|<!--", js, re.IGNORECASE):
        raise InputError(ASSETS / "leaflet.js", "cannot be inlined in a <script>: it holds '</script' or '<!--'")
    css = (ASSETS / "leaflet.css").read_text(encoding="utf-8")

    def inline(m: re.Match) -> str:
        f = ASSETS / m.group(1)
        if not f.is_file():
            return "none"
        return "url(data:image/png;base64," + base64.b64encode(f.read_bytes()).decode("ascii") + ")"

    css = re.sub(r"url\((images/[^)]+)\)", inline, css)
    return js, css


def pick_tiles(build: Build, n: int = MAX_TILES) -> list[tuple[str, str]]:
    """(tile, what it shows) of up to ``n`` tiles: Fig. 8's on the simulated world, then those with most lakes."""
    tiles = build.tiles()
    picks: list[tuple[str, str]] = []
    world = build.root / "00_world"
    if (world / "world.json").is_file():
        from lakepaper.figures.comparison import world_tiles
        from lakepaper.truth import Truth

        try:
            picks = [(t, what) for what, t in world_tiles(Truth(world).tiles()) if t in tiles]
        except (OSError, KeyError, ValueError):
            picks = []
    product = build.product()
    if product is not None and "tile" in product:
        for t, k in product.tile.value_counts().items():
            if t in tiles and t not in dict(picks):
                picks.append((str(t), f"{k} lake{'s' if k != 1 else ''}"))
    picks += [(t, "") for t in tiles if t not in dict(picks)]
    return picks[:n]


def _simplified(geoms, metres: float) -> np.ndarray:
    tol = metres / 111_320.0  # degrees of latitude; fewer metres along a parallel
    return shapely.simplify(np.asarray(geoms), tol, preserve_topology=True)


def encode_geometry(geom) -> list[list[list[int]]]:
    """A (multi)polygon as polygons of rings, each ring flat ``[x0, y0, dx1, dy1, ...]`` in 10^-DECIMALS degrees
    (first point, then steps; the closing point left out): about a third of GeoJSON's text."""
    out = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        rings = []
        for ring in (poly.exterior, *poly.interiors):
            q = np.round(np.asarray(ring.coords)[:-1, :2] * 10**DECIMALS).astype(np.int64)
            rings.append(np.vstack([q[:1], np.diff(q, axis=0)]).ravel().tolist())
        out.append(rings)
    return out


def decode_geometry(coded: list[list[list[int]]]):
    """The (multi)polygon of :func:`encode_geometry` (what the page's script does; for tests)."""
    polys = []
    for rings in coded:
        pts = [np.cumsum(np.asarray(r, dtype=np.int64).reshape(-1, 2), axis=0) / 10**DECIMALS for r in rings]
        polys.append(shapely.Polygon(pts[0], pts[1:]))
    return shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]


def _features(gdf, props, metres: float = SIMPLIFY_REFERENCE_M) -> list[dict]:
    """``{"p": properties, "c": encoded geometry}`` per row (empty geometries left out)."""
    if gdf is None or not len(gdf):
        return []
    geoms = _simplified(gdf.geometry.values, metres)
    out = []
    for g, (_, row) in zip(geoms, gdf.iterrows(), strict=True):
        coded = encode_geometry(g) if g is not None else []
        if coded:
            out.append({"p": props(row), "c": coded})
    return out


def _num(v, nd: int = 4):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(f) else round(f, nd)


def _id(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else int(v)


def _product_props(r) -> dict:
    return {
        "id": int(r.id),
        "area_km2": _num(r.area_km2),
        "source": r.source,
        "sources": r.sources if r.sources != r.source else None,  # None: the source alone
        "glakes": _id(r.glakes_id),
        "pld": _id(r.pld_id),
        "truth": r.get("truth"),
        "tile": r.tile,
    }


LAYER_PROPS = {
    "glakes": lambda r: {"GLAKES lake": _id(r.get("Lake_id")), "type": _id(r.get("Lake_type"))},
    "pld": lambda r: {"PLD lake": _id(r.get("lake_id")), "area_km2": _num(r.get("ref_area"))},
}


def map_data(build: Build, tiles: list[tuple[str, str]], *, budget: int = DATA_BUDGET) -> dict:
    """What the script draws: per tile its bounds and true-colour and NDWI images; the lakes of the product
    (with the inspector's attributes), GLAKES and PLD that intersect those tiles; the layers' styles.

    Tiles are taken in order while their images and lakes fit in ``budget`` bytes (the first always). The
    truth is in the inspector's text, not drawn: its outlines would double the weight of the page.
    """
    data: dict = {
        "tiles": [],
        "layers": {"product": [], "glakes": [], "pld": []},
        "styles": {k: v for k, v in STYLES.items() if k in ("product", "glakes", "pld")},
        "scale": 10**DECIMALS,
    }
    rules: dict[str, int] = {}  # the rules' sentences, once each; a lake lists their numbers

    def product_props(r) -> dict:
        return {**_product_props(r), "rules": [rules.setdefault(x, len(rules)) for x in r.rules]}

    product = build.product()
    catalogues = {k: build.catalogue(k) for k in LAYER_PROPS}
    seen: dict[str, set] = {k: set() for k in data["layers"]}
    used = 0
    for tile, what in tiles:
        comp = build.raster("rgb", tile)
        rgb = render(comp, "rgb", max_px=IMAGE_PX, fmt="jpeg")
        ndwi = render(comp, "ndwi", max_px=IMAGE_PX, fmt="jpeg")
        (s, w), (n, e) = rgb.bounds
        box = (w, s, e, n)
        layers = {}
        lakes = in_bounds(product, box)
        lakes = lakes[~lakes.id.isin(seen["product"])]
        known = sum(map(len, rules))
        layers["product"] = _features(lake_records(build, lakes), product_props, SIMPLIFY_M) if len(lakes) else []
        for k, props in LAYER_PROPS.items():
            cat = in_bounds(catalogues[k], box)
            cat = cat[~cat.index.isin(seen[k])] if cat is not None else None
            layers[k] = _features(cat, props)
        entry = {"name": tile, "what": what, "bounds": [[s, w], [n, e]], "rgb": rgb.data_url(), "ndwi": ndwi.data_url()}
        size = len(json.dumps([entry, layers], separators=(",", ":"))) + sum(map(len, rules)) - known
        if data["tiles"] and used + size > budget:
            break
        used += size
        data["tiles"].append(entry)
        for k, feats in layers.items():
            data["layers"][k] += feats
        seen["product"] |= set(lakes.id)
        if "focus" not in data and len(lakes):  # the largest lake of the first tile: what a check clicks
            big = lakes.loc[lakes.area_km2.idxmax()]
            at = big.geometry.representative_point()
            data["focus"] = {"id": int(big.id), "at": [round(at.y, 6), round(at.x, 6)], "tile": tile}
        for k in LAYER_PROPS:
            cat = in_bounds(catalogues[k], box)
            seen[k] |= set(cat.index) if cat is not None else set()
    data["rules"] = list(rules)
    return data


def _jpeg_size(uri: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        return im.size


def _json_script(obj) -> str:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


CSS = """
#lake-map [hidden] { display: none !important; }
#lake-map .lp-map { height: 540px; border: 1px solid var(--line); margin: .6em 0; background: #dde3e8; }
#lake-map .lp-gallery { display: flex; flex-wrap: wrap; gap: 10px; }
#lake-map .lp-gallery figure { margin: 0; flex: 1 1 220px; max-width: 240px; }
#lake-map .lp-gallery img { width: 100%; height: auto; border: 1px solid var(--line); }
#lake-map .lp-inspector { font-size: .85em; min-height: 3em; border: 1px solid var(--line); background: #f6f8fa;
  padding: 6px 10px; }
#lake-map .lp-inspector table { border-collapse: collapse; }
#lake-map .lp-inspector th { text-align: left; padding-right: 10px; color: var(--muted); font-weight: 600;
  vertical-align: top; }
#lake-map .lp-inspector ul { margin: .2em 0 0 1.2em; padding: 0; }
#lake-map .lp-tiles a { display: block; width: auto; height: auto; line-height: 1.5; text-align: left;
  padding: 2px 8px; cursor: pointer; color: var(--accent); }
#lake-map .lp-tiles a.on { font-weight: 700; }
"""

SCRIPT = r"""
(function () {
  var root = document.getElementById('lake-map');
  var data = JSON.parse(document.getElementById('lake-map-data').textContent);
  var box = root.querySelector('.lp-map'), info = root.querySelector('.lp-inspector');
  root.querySelector('.lp-gallery').hidden = true;
  box.hidden = false; info.hidden = false;
  var map = L.map(box, {zoomSnap: 0.25, attributionControl: false});
  map.createPane('lpImages').style.zIndex = 350;
  var rgb = L.layerGroup(), ndwi = L.layerGroup(), tileBounds = {};
  data.tiles.forEach(function (t) {
    var img = root.querySelector('img[data-tile="' + t.name + '"]');
    tileBounds[t.name] = L.latLngBounds(t.bounds);
    L.imageOverlay(img.getAttribute('src'), t.bounds, {pane: 'lpImages', alt: t.name + ' true colour'}).addTo(rgb);
    L.imageOverlay(t.ndwi, t.bounds, {pane: 'lpImages', alt: t.name + ' NDWI'}).addTo(ndwi);
  });
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function row(k, v) { return '<tr><th>' + esc(k) + '</th><td>' + esc(v) + '</td></tr>'; }
  var selected = null;
  function inspect(kind, p, layer) {
    if (selected) { selected.setStyle({weight: selected.options.lpWeight}); }
    selected = layer; layer.setStyle({weight: layer.options.lpWeight + 3});
    var h;
    if (kind === 'product') {
      h = '<table>' + row('lake', '#' + p.id + ' (tile ' + p.tile + ')') +
        row('area', (p.area_km2 >= 0.01 ? p.area_km2.toFixed(2) : p.area_km2.toFixed(4)) + ' km²') +
        row('source', p.sources ? p.source + ' (' + p.sources + ')' : p.source);
      if (p.glakes !== null) h += row('GLAKES', 'overlaps lake ' + p.glakes);
      if (p.pld !== null) h += row('PLD', 'overlaps lake ' + p.pld);
      if (p.truth) h += row('truth', p.truth);
      h += '</table><b>rules</b><ul>' +
        p.rules.map(function (i) { return '<li>' + esc(data.rules[i]) + '</li>'; }).join('') + '</ul>';
    } else {
      h = '<b>' + esc(data.styles[kind].name) + '</b><table>' +
        Object.keys(p).map(function (k) { return row(k, p[k]); }).join('') + '</table>';
    }
    info.innerHTML = h;
    info.setAttribute('data-lake', kind === 'product' ? p.id : '');
  }
  function ring(a) {
    var out = [], x = 0, y = 0;
    for (var i = 0; i < a.length; i += 2) { x += a[i]; y += a[i + 1]; out.push([x / data.scale, y / data.scale]); }
    out.push(out[0]);
    return out;
  }
  function feature(f) {
    return {type: 'Feature', properties: f.p,
            geometry: {type: 'MultiPolygon', coordinates: f.c.map(function (p) { return p.map(ring); })}};
  }
  var overlays = {'composite: true colour': rgb, 'composite: NDWI': ndwi};
  ['truth', 'glakes', 'pld', 'product'].forEach(function (kind) {
    var feats = data.layers[kind];
    if (!feats) return;
    var s = data.styles[kind];
    var layer = L.geoJSON({type: 'FeatureCollection', features: feats.map(feature)}, {
      style: function (f) {
        return {color: s.color, weight: s.weight, lpWeight: s.weight, dashArray: s.dashArray || null,
                fillOpacity: kind === 'product' ? 0.15 : 0.04,
                className: 'lp-' + kind + (kind === 'product' ? ' lp-lake-' + f.properties.id : '')};
      },
      onEachFeature: function (f, l) {
        l.on('click', function (e) { L.DomEvent.stopPropagation(e); inspect(kind, f.properties, l); });
      }
    });
    overlays[s.name + ' (' + feats.length + ')'] = layer;
    if (kind !== 'truth') layer.addTo(map);
  });
  rgb.addTo(map);
  L.control.layers(null, overlays, {collapsed: false}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  var picker = L.control({position: 'bottomleft'});
  picker.onAdd = function () {
    var div = L.DomUtil.create('div', 'leaflet-bar lp-tiles');
    div.style.background = '#fff';
    data.tiles.forEach(function (t) {
      var a = L.DomUtil.create('a', '', div);
      a.textContent = t.name + (t.what ? ' · ' + t.what : '');
      a.setAttribute('data-tile', t.name);
      L.DomEvent.on(a, 'click', function (e) { L.DomEvent.stop(e); show(t.name); });
    });
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  picker.addTo(map);
  function show(name) {
    map.fitBounds(tileBounds[name]);
    root.querySelectorAll('.lp-tiles a').forEach(function (a) {
      a.className = a.getAttribute('data-tile') === name ? 'on' : '';
    });
  }
  show(data.focus ? data.focus.tile : data.tiles[0].name);  // the first tile with lakes
  window.lakepaperMap = {map: map, show: show, tiles: tileBounds};
})();
"""


def map_html(build: Build, *, n_tiles: int = MAX_TILES) -> str:
    """The map's section of the page; ``""`` when the build has no composite or no product.

    Raises:
        InputError: a file the map needs is unreadable.
    """
    if build.product() is None or not build.tiles():
        return ""
    data = map_data(build, pick_tiles(build, n_tiles))
    gallery = []
    for t in data["tiles"]:  # the true-colour images go into the page as images, the script takes them there
        rgb, cap = t.pop("rgb"), t["name"] + (f", {t['what']}" if t["what"] else "")
        w, h = _jpeg_size(rgb)
        gallery.append(
            f"<figure><img src='{rgb}' width='{w}' height='{h}' data-tile='{html.escape(t['name'])}' "
            f"alt='{html.escape(cap)}: composite, true colour'><figcaption class='note'>{html.escape(cap)}"
            "</figcaption></figure>"
        )
    n = {k: len(v) for k, v in data["layers"].items()}
    js, css = leaflet_assets()
    names = ", ".join(f"{STYLES[k]['name']} ({v})" for k, v in n.items())
    truth = ", and the truth lake under it (simulated world)" if build.truth() is not None else ""
    return (
        f"<h2 id='{SECTION_ID}-title'>{html.escape(TITLE)}</h2>"
        f"<section id='{SECTION_ID}'><style>{css}{CSS}</style>"
        f"<p>The composites of {len(data['tiles'])} tiles (stage 01, true colour and NDWI) with "
        f"{html.escape(names)}, styled as Fig. 8. Click a lake of the product: its area, what found it, the "
        f"post-processing rules that touched it and why{truth}. Tiles: bottom left; layers: top right. "
        f"<span class='note'>(Leaflet {LEAFLET_VERSION}, BSD-2-Clause, inlined. <code>notebooks/explore.ipynb"
        "</code> shows any tile with the model's probability and raw mask, the truth's outlines and a split "
        "view.)</span></p>"
        "<div class='lp-gallery'>" + "".join(gallery) + "</div>"
        "<noscript><p class='note'>Scripts are off: the composites above, and Fig. 8's maps, show the same tiles "
        "without the lakes to click.</p></noscript>"
        "<div class='lp-map' hidden></div><div class='lp-inspector' hidden><i>Click a lake.</i></div>"
        f"<script type='application/json' id='{SECTION_ID}-data'>{_json_script(data)}</script>"
        f"<script>{js}</script><script>{SCRIPT}</script></section>"
    )


def map_section(root: Path, profile: str) -> str:
    """:func:`map_html` of a build folder, or a note saying why the map could not be made (never raises on a
    build that lacks it: the page is built from whatever the stages produced)."""
    try:
        return map_html(Build(profile, root))
    except (OSError, ValueError, KeyError) as exc:  # InputError is a ValueError
        if isinstance(exc, InputError) and "no composites" in str(exc):
            return ""
        why = html.escape(str(exc))
        return f"<p class='missing' id='{SECTION_ID}'><b>{html.escape(TITLE)}</b> — not made: {why}.</p>"


# --- the check in Chromium --------------------------------------------------------------------------


@dataclass
class MapCheck:
    """What :func:`check_map` saw."""

    scripts: bool
    tiles: int = 0  # image overlays loaded (true colour, the layer shown first)
    lakes: int = 0  # product outlines drawn
    gallery_visible: bool = False
    map_visible: bool = False
    clicked: int | None = None  # id of the lake clicked, if any
    inspector: str = ""  # the inspector's text after the click
    console: list[str] = field(default_factory=list)  # SEVERE console entries
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        if not self.scripts:  # progressive enhancement: the gallery stands in for the map
            return self.gallery_visible and not self.map_visible and not self.console
        clicked = self.clicked is None or f"#{self.clicked} " in self.inspector
        return self.map_visible and not self.gallery_visible and self.tiles > 0 and clicked and not self.console

    def problems(self) -> list[str]:
        out = [f"console error: {c}" for c in self.console]
        if not self.scripts:
            if not self.gallery_visible or self.map_visible:
                out.append("without scripts the composites' gallery should show and the map stay hidden")
            return out
        if not self.map_visible or self.gallery_visible:
            out.append("the map did not replace the gallery")
        if not self.tiles:
            out.append("no composite overlay loaded")
        if self.clicked is not None and f"#{self.clicked} " not in self.inspector:
            out.append(f"clicking lake {self.clicked} did not open its inspector (got {self.inspector[:80]!r})")
        return out


def check_map(
    page: str | Path,
    *,
    screenshot: str | Path | None = None,
    click: tuple[int, float, float] | str | None = "focus",
    scripts: bool = True,
    width: int = 1280,
    height: int = 1000,
    timeout: float = 60,
) -> MapCheck:
    """Open the page's map in headless Chromium; click a lake; report what rendered; save a screenshot.

    Args:
        page: the HTML file.
        screenshot: PNG of the map's part of the page (``width`` x ``height``), or None.
        click: (lake id, lat, lon) to click, ``"focus"`` (the lake the page names, the largest of its first
            tile) or None.
        scripts: False opens the page with JavaScript off (the gallery must stand in for the map).

    Raises:
        BrowserUnavailable: no Chromium, chromedriver or selenium (:mod:`lakepaper.report.browser`).
    """
    import time

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from lakepaper.report.browser import console_errors, save_screenshot, start_chromium

    driver = start_chromium(width, height, scripts=scripts)
    report = MapCheck(scripts=scripts)
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(Path(page).resolve().as_uri())
        box = driver.find_element(By.CSS_SELECTOR, f"#{SECTION_ID} .lp-map")
        gallery = driver.find_element(By.CSS_SELECTOR, f"#{SECTION_ID} .lp-gallery")
        report.gallery_visible, report.map_visible = gallery.is_displayed(), box.is_displayed()
        top = box if report.map_visible else gallery  # below the page's sticky banner, the inspector in view
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -80);", top)
        if scripts and report.map_visible:
            deadline = time.monotonic() + timeout
            count = (
                f"return Array.from(document.querySelectorAll('#{SECTION_ID} img.leaflet-image-layer'))"
                ".filter(i => i.complete && i.naturalWidth > 0).length"
            )
            while time.monotonic() < deadline and not driver.execute_script(count):
                time.sleep(0.1)
            report.tiles = driver.execute_script(count)
            if click == "focus":
                focus = driver.execute_script(
                    f"return JSON.parse(document.getElementById('{SECTION_ID}-data').textContent).focus || null"
                )
                click = (focus["id"], *focus["at"]) if focus else None
            if click is not None:
                lake, lat, lon = click
                driver.execute_script("lakepaperMap.map.setView([arguments[0], arguments[1]], 15);", lat, lon)
                time.sleep(0.4)
                x, y, w, h = driver.execute_script(
                    "const m = lakepaperMap.map, p = m.latLngToContainerPoint([arguments[0], arguments[1]]);"
                    "return [p.x, p.y, m.getSize().x, m.getSize().y];",
                    lat,
                    lon,
                )
                ActionChains(driver).move_to_element_with_offset(box, x - w / 2, y - h / 2).click().perform()
                time.sleep(0.3)
                report.clicked = int(lake)
                report.inspector = driver.find_element(By.CSS_SELECTOR, f"#{SECTION_ID} .lp-inspector").text
            report.lakes = len(driver.find_elements(By.CSS_SELECTOR, f"#{SECTION_ID} path.lp-product"))
        if screenshot is not None:
            report.screenshot = save_screenshot(driver, screenshot)
        report.console = console_errors(driver)
        return report
    finally:
        driver.quit()
