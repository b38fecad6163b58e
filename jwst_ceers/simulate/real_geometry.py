"""
Exposure geometry from the real CEERS WCS solutions (real distortion, layout, dithers, filter offsets).

The 210 ``<root>_tweakreg.asdf`` files of CEERS pointing nircam1 (observation 001; see
``../shared/data/ceers_dr05/README.md``) hold the aligned gwcs of every exposure:
CRDS distortion, DVA correction and the fitted tangent-plane correction. Used as the
TRUE WCS they give the simulator the real detector layout (each detector rotated 8-32"
from the pysiaf layout), the filter-dependent offsets (module A: about +45/-40 mas for
F115W/F150W, +133/-178 mas for F200W) and the real dithers. The HEADER WCS is the
truth with a shift of the V2/V3 plane inserted in front of the sky projection: the
pointing error of the visit plus a per-detector error.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.simulate.nircam_geometry import FULL_SIZE, subarray_window

__all__ = ["REAL_ACTIVITY", "default_real_wcs_dir", "real_wcs_file", "load_real_wcs", "real_exposure_wcs",
           "real_exposure_geometry", "reference_pointing"]

#: Activity of CEERS nircam1 (observation 001) in which each filter was observed
#: (from the real association files: F115W in 02-08 with F277W/F356W, F150W in 10-12
#: with F410M, F200W in 14 with F444W); the first one is used.
REAL_ACTIVITY = {"F115W": "02201", "F150W": "10201", "F200W": "14201", "F277W": "02201", "F356W": "06201",
                 "F410M": "10201", "F444W": "14201"}
N_REAL_DITHERS = 3


def default_real_wcs_dir():
    """``../shared/data/ceers_dr05/tweakreg_wcs`` beside the checkout (None when absent)."""
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "ceers_dr05" / "tweakreg_wcs"
    return path if path.is_dir() else None


def real_wcs_file(detector, filter_name, dither, *, wcs_dir=None):
    """
    Path of the real solution of ``detector`` in ``filter_name`` at ``dither`` (1-based, cycles over 3).

    Raises
    ------
    CeersParameterError
        Filter not observed by CEERS.
    CeersFileError
        Directory or file missing.
    """
    filter_name = filter_name.upper()
    if filter_name not in REAL_ACTIVITY:
        raise CeersParameterError(f"real geometry: filter {filter_name} was not observed by CEERS; "
                                  f"known: {', '.join(REAL_ACTIVITY)}")
    wcs_dir = Path(wcs_dir) if wcs_dir is not None else default_real_wcs_dir()
    if wcs_dir is None or not wcs_dir.is_dir():
        raise CeersFileError(f"real geometry: WCS directory {wcs_dir} not found "
                             "(pass wcs_dir=<...>/ceers_dr05/tweakreg_wcs)")
    number = (int(dither) - 1) % N_REAL_DITHERS + 1
    path = wcs_dir / f"jw01345001001_{REAL_ACTIVITY[filter_name]}_{number:05d}_{detector.lower()}_tweakreg.asdf"
    if not path.is_file():
        raise CeersFileError(f"real geometry: {path} not found")
    return path


@lru_cache(maxsize=64)
def load_real_wcs(path):
    """The gwcs (tree key ``wcs``) of a real solution file (cached; callers must not modify it)."""
    import asdf

    try:
        with asdf.open(path, lazy_load=False, memmap=False) as handle:
            return handle["wcs"]
    except (OSError, ValueError, KeyError) as exc:
        raise CeersFileError(f"{path}: cannot read a gwcs under 'wcs': {exc}") from exc


def _with_changes(wcs, *, start, size, shift_arcsec):
    """A copy of ``wcs`` on a centred subarray, with a V2/V3 shift before the sky projection."""
    import copy

    from astropy.modeling.models import Shift

    out = copy.deepcopy(wcs)
    if start:
        out.insert_transform("detector", Shift(float(start)) & Shift(float(start)), after=True)
    if shift_arcsec is not None:
        frames = out.available_frames
        # the last frame before 'world' (v2v3corr in the real files): shift applied just before v23tosky
        out.insert_transform(frames[-2], Shift(float(shift_arcsec[0])) & Shift(float(shift_arcsec[1])), after=True)
    out.bounding_box = ((-0.5, size - 0.5), (-0.5, size - 0.5))
    return out


def real_exposure_wcs(detector, filter_name, dither, *, size=None, error_arcsec=(0.0, 0.0), wcs_dir=None):
    """
    TRUE and HEADER gwcs of a simulated exposure on a real CEERS geometry.

    Parameters
    ----------
    detector, filter_name : str
    dither : int
        1-based; the three real dithers are cycled.
    size : int or None
        Centred square subarray size (None: full frame).
    error_arcsec : (float, float)
        Header minus true, as a shift of the V2/V3 plane (arcsec).
    wcs_dir : str or Path, optional

    Returns
    -------
    (true_wcs, header_wcs)
    """
    start, n = subarray_window(size if size is not None and size != FULL_SIZE else None)
    real = load_real_wcs(str(real_wcs_file(detector, filter_name, dither, wcs_dir=wcs_dir)))
    return (_with_changes(real, start=start, size=n, shift_arcsec=None),
            _with_changes(real, start=start, size=n, shift_arcsec=error_arcsec))


def reference_pointing(wcs):
    """
    ``meta.wcsinfo`` pointing keys of a JWST gwcs, read from its ``v2v3 -> world`` rotation.

    Returns
    -------
    dict
        ``v2_ref, v3_ref`` (arcsec), ``roll_ref, ra_ref, dec_ref`` (deg): the angles of the
        5-angle ``RotationSequence3D`` of jwst's ``v23tosky``, as tweakwcs checks them.
    """
    from astropy.modeling.rotations import RotationSequence3D

    transform = wcs.get_transform(wcs.available_frames[-2], "world")
    rotations = [m for m in transform.traverse_postorder()
                 if isinstance(m, RotationSequence3D) and len(m.angles.value) == 5]
    if not rotations:
        raise CeersParameterError("real geometry: the WCS has no v23tosky rotation (5-angle RotationSequence3D)")
    v2, mv3, roll, dec, mra = (float(a) for a in rotations[-1].angles.value)
    return dict(v2_ref=v2 * 3600.0, v3_ref=-mv3 * 3600.0, roll_ref=roll % 360.0, ra_ref=(-mra) % 360.0, dec_ref=dec)


def real_exposure_geometry(detector, filter_name, *, seed, dither=1, size=None, pointing_error_arcsec=(0.1, 0.3),
                           detector_error_mas=(5.0, 30.0), wcs_dir=None):
    """
    ``simulate_exposure`` keyword arguments (``true_wcs``, ``header_wcs``) for one real geometry.

    The header error is a random pointing error (magnitude in ``pointing_error_arcsec``)
    plus a per-detector one (``detector_error_mas``), drawn from ``seed``.
    """
    rng = np.random.default_rng([int(seed), 1803])
    magnitude = rng.uniform(*pointing_error_arcsec)
    angle = rng.uniform(0, 2 * np.pi)
    extra = rng.uniform(*detector_error_mas) / 1000.0
    angle2 = rng.uniform(0, 2 * np.pi)
    error = (magnitude * np.cos(angle) + extra * np.cos(angle2), magnitude * np.sin(angle) + extra * np.sin(angle2))
    true_wcs, header_wcs = real_exposure_wcs(detector, filter_name, dither, size=size, error_arcsec=error,
                                             wcs_dir=wcs_dir)
    return dict(true_wcs=true_wcs, header_wcs=header_wcs)
