"""Stage 01 over a whole world: one composite per tile, the tile grid, and a summary table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper.composite.grid import write_tile_grid
from lakepaper.composite.local import composite_tile
from lakepaper.world.files import WorldFiles


def composite_world(
    world: WorldFiles, out_dir: str | os.PathLike[str], p: dict[str, Any], *, progress: bool = True
) -> pd.DataFrame:
    """Composite every tile of ``world`` into ``out_dir/tiles/<tile>.tif``; write ``tile_grid.gpkg``.

    Returns:
        One row per tile: scenes used, share of pixels with a clear observation, mean count, seconds.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    rows = []
    for tile in tqdm(list(world.tiles().tile), desc="composites", unit="tile", disable=not progress):
        info = composite_tile(world, tile, out / "tiles" / f"{tile}.tif", p=p)
        rows.append({k: v for k, v in info.items() if k != "scenes"} | {"n_scenes": len(info["scenes"])})
    write_tile_grid(out, [(t.tile, int(t.epsg), tuple(t.bounds)) for t in world.tiles().itertuples()])
    summary = pd.DataFrame(rows)
    summary["path"] = summary["path"].map(lambda s: str(Path(s).relative_to(out)))
    return summary
