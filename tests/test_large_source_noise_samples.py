"""The large-galaxy search's noise estimate samples a large mosaic more sparsely.

Every 4th pixel of a 10600 x 4800 mosaic is 3.2 M samples and 0.2 s of medians per
search (four searches per mosaic); above ``NOISE_SAMPLES`` the grid is made sparser
(up to one per 8 x 8 block). The galaxy found must not move.
"""

import numpy as np

from jwst_ceers.mosaic_bkg import large_sources
from jwst_ceers.mosaic_bkg.large_sources import find_large_bright_sources, search_inputs


def _scene():
    rng = np.random.default_rng(11)
    n = 1024
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    galaxy = 40.0 * np.exp(-np.hypot(yy - 560, xx - 480) / 45.0)
    data = (0.5 * xx / n + galaxy).astype(np.float32) + rng.normal(0, 1, (n, n)).astype(np.float32)
    return data, galaxy > 0.5


def test_noise_sample_grid_is_sparser_on_large_mosaics(monkeypatch):
    data, mask = _scene()
    dense = search_inputs(data, mask)
    assert dense.step == 4 and dense.samples.shape == (256, 256)
    found_dense = find_large_bright_sources(data, mask, prepared=dense)

    monkeypatch.setattr(large_sources, "NOISE_SAMPLES", 20_000)  # as if the mosaic were 16x larger
    sparse = search_inputs(data, mask)
    assert sparse.step == 8 and sparse.samples.shape == (128, 128)
    found_sparse = find_large_bright_sources(data, mask, prepared=sparse)
    assert len(found_dense) == len(found_sparse) == 1
    (y0, x0, r0), (y1, x1, r1) = found_dense[0], found_sparse[0]
    assert np.hypot(y1 - 560, x1 - 480) < 8 and abs(r1 - r0) < 0.05 * r0

    monkeypatch.setattr(large_sources, "NOISE_SAMPLES", 10)  # never sparser than one per block
    assert search_inputs(data, mask).step == 8
