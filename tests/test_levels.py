"""What the pyramid page computes: level views, the vector and its table, the fixed-length rows."""

from __future__ import annotations

import numpy as np
import pytest
from badfiles import photo

from spp_viz.explain.level_views import PRESETS, fixed_length_rows, level_view, spp_vector
from spp_viz.geometry import feature_geometry
from spp_viz.models import load_model
from spp_viz.pyramid import num_bins, vector_csv, vector_table


def test_presets_are_the_papers():
    assert {num_bins(v) for v in PRESETS.values()} == {50, 30, 21, 14}


def test_level_view_values_and_winners():
    rng = np.random.default_rng(0)
    fmap = rng.random((13, 17)).astype(np.float32)
    geom = feature_geometry(load_model("zf5", device="cpu"), (224, 300))
    view = level_view(fmap, geom, 3, "max", "adaptive")
    assert view.values.shape == (3, 3) and view.winners.shape == (3, 3, 2) and len(view.bins) == 9
    for b in view.bins:
        r, c = view.winners[b.row, b.col]
        assert b.rows[0] <= r < b.rows[1] and b.cols[0] <= c < b.cols[1]
        assert view.values[b.row, b.col] == fmap[r, c] == fmap[b.rows[0] : b.rows[1], b.cols[0] : b.cols[1]].max()
    avg = level_view(fmap, geom, 2, "avg")
    assert avg.winners is None
    b = avg.bins[3]
    assert np.isclose(avg.values[1, 1], fmap[b.rows[0] : b.rows[1], b.cols[0] : b.cols[1]].mean())


def loop_table(vector: np.ndarray, levels, channels: int) -> list[tuple[int, int, int, int, float]]:
    """Slow reference: walk the SPP layout level by level, channel by channel, bin by bin."""
    rows, pos = [], 0
    for n in levels:
        block = vector[pos : pos + channels * n * n].reshape(channels, n, n)  # (C*n*n,) -> (C, n, n)
        for c in range(channels):
            for i in range(n):
                for j in range(n):
                    rows.append((n, c, i, j, float(block[c, i, j])))
        pos += channels * n * n
    return rows


def test_vector_table_follows_the_op_layout():
    rng = np.random.default_rng(1)
    conv5 = rng.random((3, 5, 7)).astype(np.float32)
    vec = spp_vector(conv5, (2, 1))
    table = vector_table(vec, (2, 1), 3)
    assert len(table) == len(vec) == 3 * 5
    assert [v for *_, v in table] == pytest.approx(vec.tolist())
    assert table[4][:4] == (2, 1, 0, 0)  # level 2, channel 1, bin (0, 0)
    assert table[12][:4] == (1, 0, 0, 0) and table[12][4] == pytest.approx(conv5[0].max())
    csv = vector_csv(vec, (2, 1), 3).splitlines()
    assert csv[0] == "position,level,channel,bin_row,bin_col,value" and len(csv) == 16
    # The table and the CSV say, row by row, what the slow loop over the layout says.
    big = spp_vector(rng.random((64, 9, 13)).astype(np.float32), (6, 3, 2, 1))
    rows = [line.split(",") for line in vector_csv(big, (6, 3, 2, 1), 64).splitlines()[1:]]
    ref = loop_table(big, (6, 3, 2, 1), 64)
    assert vector_table(big, (6, 3, 2, 1), 64) == ref
    assert [tuple(map(int, r[1:5])) for r in rows] == [t[:4] for t in ref]
    assert [int(r[0]) for r in rows] == list(range(len(ref)))
    assert [float(r[5]) for r in rows] == pytest.approx([t[4] for t in ref], rel=1e-5)
    for wrong in (vector_csv, vector_table):
        with pytest.raises(ValueError, match="does not fit"):
            wrong(big, (4, 2, 1), 64)


def test_fixed_length_rows_have_many_grids_and_one_length(default_model):
    rows = fixed_length_rows(default_model, photo(451, 300), (6, 3, 2, 1))
    assert len({r.conv5_hw for r in rows}) >= 5
    assert {r.spp_length for r in rows} == {1280 * 50}
    wide = next(r for r in rows if r.view.startswith("stretched wide"))
    assert wide.input_hw == (224, 448) and wide.conv5_hw == (7, 14)


def test_reads_pyramid_says_whether_the_classifier_reads_the_drawn_levels(zf5_model):
    """ZF-5's fc6 reads {6,3,2,1} max: those levels are its own; another pyramid or avg pooling is read by nothing."""
    from spp_viz.explain.level_views import reads_pyramid

    assert reads_pyramid(zf5_model, (6, 3, 2, 1), "max").startswith("zf5's classifier reads these four levels (max")
    for levels, mode in (((4, 2, 1), "max"), ((6, 3, 2, 1), "avg")):
        said = reads_pyramid(zf5_model, levels, mode)
        assert said.startswith("zf5's classifier reads {6,3,2,1} (max pooling), not the pyramid drawn here"), said
