"""CatalogTweakReg's ``aligned_catalog``: the aligned sources of one run as the reference of another.

A SW detector fitted alone to an HST-like catalogue (5-15 mas per source) averages that
noise over ~260 sources only; the LW detector of the same visit covers four SW
detectors. Aligning LW first and SW to the LW sources is measured in
``benchmarks/robustness.py``; here: the catalog is right (positions against injected
truth, one entry per source) and the output checks refuse bad paths.
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from scipy.spatial import cKDTree

from jwst_ceers import CatalogTweakReg
from jwst_ceers.errors import CeersFileError
from jwst_ceers.tweakreg.aligned_catalog import aligned_source_catalog
from jwst_ceers.tweakreg.alignment import merge_detections
from jwst_ceers.tweakreg.reference_catalog import load_reference_catalog

PARAMETER_FILES = Path(__file__).resolve().parents[1] / "parameter_files"
MAS_PER_DEG = 3.6e6


def _write_asn(path, files):
    from jwst.associations.asn_from_list import asn_from_list
    from jwst.associations.lib.rules_level3_base import DMS_Level3_Base

    asn = asn_from_list([Path(f).name for f in files], rule=DMS_Level3_Base, product_name=path.stem)
    path.write_text(asn.dump(format="json")[1])
    return path


def _true_wcs(truth):
    import asdf

    with asdf.open(truth.true_wcs_file, lazy_load=False, memmap=False) as handle:
        return handle["wcs"]


def test_merge_detections_averages_each_source_once():
    rng = np.random.default_rng(3)
    ra0, dec0 = 214.9, 52.9
    ra = ra0 + rng.uniform(0, 60, 400) / 3600 / np.cos(np.radians(dec0))
    dec = dec0 + rng.uniform(0, 60, 400) / 3600
    seen = [rng.random(400) < 0.8 for _ in range(3)]
    noise = 5.0 / MAS_PER_DEG
    sky = [(ra[s] + rng.normal(0, noise, s.sum()) / np.cos(np.radians(dec0)), dec[s] + rng.normal(0, noise, s.sum()))
           for s in seen]
    ra_m, dec_m, count, owner, row = merge_detections(sky, radius_arcsec=0.05)
    expected = np.sum(seen, axis=0)
    assert len(ra_m) == int((expected > 0).sum())
    source = np.array([np.flatnonzero(seen[k])[r] for k, r in zip(owner, row, strict=True)])
    np.testing.assert_array_equal(count, expected[source])
    error = MAS_PER_DEG * np.hypot((ra_m - ra[source]) * np.cos(np.radians(dec0)), dec_m - dec[source])
    three = count == 3
    # three detections of 5 mas per axis average to 5 / sqrt(3) per axis
    rms = np.sqrt(np.mean(error[three] ** 2))
    assert 0.8 * 5 * np.sqrt(2 / 3) < rms < 1.2 * 5 * np.sqrt(2 / 3), rms


def test_aligned_source_catalog_leaves_out_unaligned_exposures():
    from jwst_ceers.simulate.nircam_geometry import nircam_gwcs

    wcs = nircam_gwcs("NRCA1", ra_ref=214.9, dec_ref=52.9, roll_ref=40.0, subarray=512)
    catalog = Table({"x": [100.0, 200.0, 300.0], "y": [100.0, 250.0, 400.0], "flux": [1.0, 3.0, 2.0]})
    table = aligned_source_catalog([catalog, catalog], [wcs, None], merge_radius_arcsec=0.05)
    assert list(table["FLUX"]) == [3.0, 2.0, 1.0]  # brightest first, the unaligned copy left out
    assert list(table["NEXP"]) == [1, 1, 1]
    ra, dec = wcs(200.0, 250.0)
    assert MAS_PER_DEG * abs(table["DEC"][0] - dec) < 1e-6
    empty = aligned_source_catalog([catalog], [None], merge_radius_arcsec=0.05)
    assert len(empty) == 0 and empty.colnames == ["RA", "DEC", "FLUX", "NEXP"]


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    from jwst_ceers.simulate import simulate_pointing

    out = tmp_path_factory.mktemp("aligned_catalog")
    return simulate_pointing(out / "sim", filters=("F150W", "F356W"), sw_detectors=("NRCA3",),
                             lw_detectors=("NRCALONG",), size=1024, seed=11, source_density_scale=3.0,
                             refcat_mag_limit=27.5)


def test_lw_aligned_sources_are_true_positions_and_align_sw(pointing, tmp_path):
    files = {band: [Path(t.cal_file) for t in pointing.truth.values() if t.filter == band]
             for band in ("F150W", "F356W")}
    lw = CatalogTweakReg.from_config_file(str(PARAMETER_FILES / "ceers_tweakreg_lw.asdf"))
    lw.abs_refcat = str(pointing.refcat_path)
    lw.aligned_catalog = str(tmp_path / "out" / "lw_sources.ecsv")  # folder created
    lw.run(str(_write_asn(pointing.out_dir / "lw_asn.json", files["F356W"])))

    table = load_reference_catalog(lw.aligned_catalog)  # usable as abs_refcat
    raw = Table.read(lw.aligned_catalog)
    assert raw["NEXP"].max() == 3 and len(table) > 200
    # each entry is one source at its true position (to the LW fit's accuracy)
    src = pointing.sources
    cosd = np.cos(np.radians(52.9))
    tree = cKDTree(np.column_stack([np.asarray(src["ra"]) * cosd, np.asarray(src["dec"])]))
    dist, index = tree.query(np.column_stack([table["RA"] * cosd, table["DEC"]]))
    matched = dist * MAS_PER_DEG < 100
    assert matched.mean() > 0.9
    assert len(np.unique(index[matched])) == matched.sum()  # no source twice
    dra = (table["RA"][matched] - np.asarray(src["ra"])[index[matched]]) * cosd * MAS_PER_DEG
    ddec = (table["DEC"][matched] - np.asarray(src["dec"])[index[matched]]) * MAS_PER_DEG
    assert np.hypot(np.median(dra), np.median(ddec)) < 3.0
    # header errors are 100-300 mas: without the LW sources the SW WCS would be that far off
    sw = CatalogTweakReg.from_config_file(str(PARAMETER_FILES / "ceers_tweakreg_sw.asdf"))
    sw.abs_refcat = lw.aligned_catalog
    library = sw.run(str(_write_asn(pointing.out_dir / "sw_asn.json", files["F150W"])))
    with library:
        for index, model in enumerate(library):
            truth = _true_wcs(pointing.truth[model.meta.filename.replace("_cal.fits", "")])
            ra, dec = model.meta.wcs(512.0, 512.0)
            ra_t, dec_t = truth(512.0, 512.0)
            assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"
            assert MAS_PER_DEG * np.hypot((ra - ra_t) * cosd, dec - dec_t) < 5.0
            library.shelve(model, index, modify=False)


def test_aligned_catalog_refuses_a_folder_and_an_input(pointing, tmp_path):
    files = [Path(t.cal_file) for t in pointing.truth.values() if t.filter == "F356W"]
    asn = _write_asn(pointing.out_dir / "lw_refuse_asn.json", files)
    step = CatalogTweakReg(abs_refcat=str(pointing.refcat_path), aligned_catalog=str(tmp_path))
    with pytest.raises(CeersFileError, match="aligned_catalog .*is a directory"):
        step.run(str(asn))
    step = CatalogTweakReg(abs_refcat=str(pointing.refcat_path), aligned_catalog=str(pointing.refcat_path))
    with pytest.raises(CeersFileError, match="aligned_catalog"):
        step.run(str(asn))
