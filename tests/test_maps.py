"""Maps without the network: shipped Natural Earth files, cartopy pointed at them; save() formats."""

from __future__ import annotations

import socket
import urllib.request

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lakepaper.figures import maps, save  # noqa: E402


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Every network connection raises; cartopy's download folder is an empty temporary one."""
    import cartopy
    import cartopy.feature

    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setitem(cartopy.config, "data_dir", tmp_path / "downloads")
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", tmp_path / "nothing")
    # cartopy keeps the geometries it has read: forget them, so the files are read again here
    monkeypatch.setattr(cartopy.feature, "_NATURAL_EARTH_GEOM_CACHE", {})
    yield tmp_path / "downloads"
    plt.close("all")


def test_the_block_works(offline):
    with pytest.raises(OSError, match="blocked"):
        urllib.request.urlopen("https://naturalearth.s3.amazonaws.com/x.zip")


def test_shipped_files_are_complete_and_readable():
    from cartopy.io import shapereader

    for (category, name), scales in maps.SHIPPED.items():
        for scale in scales:
            shp = maps.natural_earth_path(name, scale, category)
            for ext in (".shp", ".shx", ".dbf", ".prj"):
                assert shp.with_suffix(ext).exists(), shp.with_suffix(ext)
            assert len(list(shapereader.Reader(shp).geometries())) > 0
    assert (maps.NATURAL_EARTH_DIR / "README.md").exists()


def test_coastlines_draw_with_the_network_blocked(offline, tmp_path):
    import cartopy.crs as ccrs

    fig = plt.figure()
    ax = maps.global_axes(fig)  # land + 110m coastline
    big = fig.add_subplot(2, 1, 2, projection=ccrs.PlateCarree())
    big.set_extent([100, 125, 18, 35], crs=ccrs.PlateCarree())
    maps.add_coastlines(big)  # regional: 50m
    fig.savefig(tmp_path / "map.png")  # drawing is when cartopy reads (or would download) the files
    assert len(ax.collections) + len(ax.patches) + len(ax.artists) >= 1
    assert not offline.exists() or not any(offline.rglob("*"))  # nothing was (or could be) downloaded
    import cartopy

    assert cartopy.config["pre_existing_data_dir"] == maps.NATURAL_EARTH_DIR
    assert "natural_earth" in str(maps.use_offline_natural_earth())


def test_cartopys_own_feature_reads_the_shipped_file(offline):
    from cartopy.io import shapereader

    maps.use_offline_natural_earth()
    path = shapereader.natural_earth(resolution="110m", category="physical", name="coastline")
    assert str(path).startswith(str(maps.NATURAL_EARTH_DIR))


def test_a_scale_that_is_not_shipped_is_refused():
    with pytest.raises(ValueError, match="ships at"):
        maps.feature("coastline", scale="10m")
    with pytest.raises(ValueError, match="not shipped"):
        maps.feature("rivers_lake_centerlines")


def test_save_writes_each_format_reproducibly(tmp_path):
    fig, ax = plt.subplots()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    save(fig, tmp_path / "a.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    save(fig, tmp_path / "fig.png", formats=("png", "pdf", "svg"))
    first = {p.name: p.read_bytes() for p in tmp_path.glob("fig.*")}
    assert sorted(first) == ["fig.pdf", "fig.png", "fig.svg"]
    assert first["fig.pdf"].startswith(b"%PDF") and b"<svg" in first["fig.svg"]
    save(fig, tmp_path / "fig.png", formats=("png", "pdf", "svg"))
    assert {p.name: p.read_bytes() for p in tmp_path.glob("fig.*")} == first  # no dates stamped in
    with pytest.raises(ValueError, match="unsupported"):
        save(fig, tmp_path / "fig.png", formats=("bmp",))
    plt.close(fig)
