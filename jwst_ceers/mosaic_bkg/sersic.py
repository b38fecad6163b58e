"""Elliptical Sersic components: evaluation on image grids and their FITS header record.

A `SersicComponent` is one fitted large galaxy (:mod:`.galaxy_models` fits them);
:func:`evaluate_components` samples a sum of them on the full-resolution, strided or
block-centre grid of a mosaic; :func:`header_cards` and :func:`components_from_header`
record them in, and read them back from, the ``*_bkg.fits`` headers.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaincinv

__all__ = [
    "SersicComponent",
    "block_ranges",
    "components_from_header",
    "evaluate_components",
    "header_cards",
    "isophote_radius",
    "sersic_b",
    "truncation_radius",
]


def sersic_b(n):
    """The b_n of a Sersic profile of index n (half the light within r_eff)."""
    return gammaincinv(2.0 * np.asarray(n, dtype=float), 0.5)


@dataclass(frozen=True)
class SersicComponent:
    """
    One elliptical Sersic profile ``I_e exp(-b_n ((r / r_eff)^(1/n) - 1))``.

    Attributes
    ----------
    y, x : float
        Centre (0-based pixels of the mosaic).
    intensity : float
        Surface brightness at ``r_eff`` (data units per pixel).
    r_eff : float
        Half-light radius along the major axis (pixels).
    n : float
        Sersic index.
    axis_ratio : float
        Minor / major axis (0-1].
    theta : float
        Position angle of the major axis from the +x axis (radians).
    r_max : float
        Truncation radius along the major axis (pixels): the profile is 0 beyond it
        (fitted models are truncated where they fall to 1/1000 of the pixel noise,
        which keeps their evaluation local).
    """

    y: float
    x: float
    intensity: float
    r_eff: float
    n: float
    axis_ratio: float
    theta: float
    r_max: float = float("inf")

    def evaluate(self, rows, cols):
        """Surface brightness (float32) at pixel coordinates ``rows``, ``cols`` (broadcast)."""
        dy = np.asarray(rows, dtype=np.float32) - np.float32(self.y)
        dx = np.asarray(cols, dtype=np.float32) - np.float32(self.x)
        cos_t, sin_t = np.float32(np.cos(self.theta)), np.float32(np.sin(self.theta))
        # in place on two full-size arrays, and x**(1/2n) as exp(log(x) / 2n): numpy's
        # float32 exp and log are vectorised, its power is not (~3x faster per pixel)
        u = np.asarray(dx * cos_t + dy * sin_t)
        v = dy * cos_t - dx * sin_t
        if not self.intensity > 0:
            return np.zeros_like(u)
        u *= u
        v *= v
        v *= np.float32(1.0 / self.axis_ratio**2)
        u += v
        scaled = u
        scaled *= np.float32(1.0 / self.r_eff**2)  # (rho / r_eff)^2
        outside = scaled > np.float32((self.r_max / self.r_eff) ** 2) if np.isfinite(self.r_max) else None
        b = float(sersic_b(self.n))
        with np.errstate(divide="ignore"):  # log(0) at the centre: -inf, then exp(-inf) = 0
            values = np.log(scaled, out=scaled)
        values *= np.float32(0.5 / self.n)
        np.exp(values, out=values)
        values *= np.float32(-b)
        values += np.float32(b + np.log(self.intensity))
        np.exp(values, out=values)
        if outside is not None:
            np.copyto(values, np.float32(0), where=outside)
        return values


def truncation_radius(intensity, r_eff, n, floor):
    """Major-axis radius where a Sersic profile falls to ``floor``."""
    if not floor > 0 or intensity <= floor:
        return float(r_eff)
    return float(r_eff * (1.0 + np.log(intensity / floor) / float(sersic_b(n))) ** n)


def isophote_radius(intensity, r_eff, n, level):
    """Major-axis radius where a Sersic profile equals ``level`` (0 if even its centre is fainter)."""
    if not (intensity > 0 and level > 0):
        return 0.0
    scaled = 1.0 + np.log(intensity / level) / float(sersic_b(n))
    return float(r_eff * scaled**n) if scaled > 0 else 0.0


def evaluate_components(components, shape, *, step=1, block=None, origin=(0, 0), out=None):
    """
    Sum of ``components`` on a grid covering an image of ``shape``.

    Parameters
    ----------
    components : sequence of SersicComponent
        The model.
    shape : tuple of int
        (ny, nx) of the full-resolution image.
    step : int
        Sample every ``step``-th pixel (the grid of ``image[::step, ::step]``).
    block : int, optional
        Instead, sample the centres of ``block`` x ``block`` blocks (the grid of
        :func:`~jwst_ceers.masking.fft_ops.block_mean`); exact away from the cores,
        which are masked.
    origin : (int, int)
        Full-resolution pixel (y, x) of the grid's first element (a cut-out of shape
        ``shape`` starting there; with ``step`` only).
    out : ndarray, optional
        A float32 array of the grid's shape to add the components to (e.g. the sum of
        earlier components: the same values as evaluating all of them at once).

    Returns
    -------
    ndarray
        ``out``, or a new float32 array (zeros when there is no component).
    """
    ny, nx = int(shape[0]), int(shape[1])
    if block:
        rows = (np.arange(-(-ny // block), dtype=np.float32) + np.float32(0.5)) * np.float32(block) - np.float32(0.5)
        cols = (np.arange(-(-nx // block), dtype=np.float32) + np.float32(0.5)) * np.float32(block) - np.float32(0.5)
    else:
        rows = np.arange(origin[0], origin[0] + ny, step, dtype=np.float32)
        cols = np.arange(origin[1], origin[1] + nx, step, dtype=np.float32)
    if out is None:
        out = np.zeros((rows.size, cols.size), dtype=np.float32)
    elif out.shape != (rows.size, cols.size) or out.dtype != np.float32:
        raise ValueError(f"evaluate_components: out must be float32 of shape {(rows.size, cols.size)}")
    for c in components:
        if not np.isfinite(c.r_max):
            out += c.evaluate(rows[:, None], cols[None, :])
            continue
        # only the grid points within the bounding box of the truncation ellipse (rows,
        # cols ascending), in bands of rows each cut to the ellipse's extent within the
        # band: about the ellipse's area instead of the (2 r_max)^2 square (several
        # times larger for elongated models)
        for (r0, r1), (c0, c1) in _ellipse_bands(c, rows, cols):
            out[r0:r1, c0:c1] += c.evaluate(rows[r0:r1, None], cols[None, c0:c1])
    return out


def block_ranges(component, shape, *, block):
    """
    Index ranges ``((r0, r1), (c0, c1))`` of the ``block`` grid of an image of ``shape``
    that :func:`evaluate_components` writes for ``component`` (all of it when the
    component is not truncated): outside them it adds nothing.
    """
    ny, nx = shape
    rows = (np.arange(-(-ny // block), dtype=np.float32) + np.float32(0.5)) * np.float32(block) - np.float32(0.5)
    cols = (np.arange(-(-nx // block), dtype=np.float32) + np.float32(0.5)) * np.float32(block) - np.float32(0.5)
    if not np.isfinite(component.r_max):
        return [((0, rows.size), (0, cols.size))]
    return _ellipse_bands(component, rows, cols)


def _ellipse_bands(component, rows, cols, *, band=64):
    """
    Index ranges ``((r0, r1), (c0, c1))`` of ``rows`` x ``cols`` covering the
    component's truncation ellipse, in bands of up to ``band`` rows.
    """
    c = component
    a, b = float(c.r_max), float(c.r_max) * float(c.axis_ratio)
    cos_t, sin_t = np.cos(c.theta), np.sin(c.theta)
    half_y = np.sqrt((a * sin_t) ** 2 + (b * cos_t) ** 2)
    half_x = np.sqrt((a * cos_t) ** 2 + (b * sin_t) ** 2)
    r0, r1 = np.searchsorted(rows, [c.y - half_y, c.y + half_y], side="left")
    # ellipse: alpha dx^2 + beta dx dy + gamma dy^2 = 1
    alpha = (cos_t / a) ** 2 + (sin_t / b) ** 2
    beta = 2.0 * cos_t * sin_t * (1.0 / a**2 - 1.0 / b**2)
    gamma = (sin_t / a) ** 2 + (cos_t / b) ** 2
    # the ellipse's leftmost / rightmost points lie on the line dy = -beta dx / (2 gamma)
    dy_extreme = abs(beta) / (2.0 * gamma) * half_x
    pad = float(np.max(np.abs(np.diff(cols)))) if cols.size > 1 else 0.0
    bands = []
    for start in range(int(r0), int(r1), band):
        stop = min(int(r1), start + band)
        low, high = float(rows[start]) - c.y, float(rows[stop - 1]) - c.y
        candidates = [dy for dy in (low, high, dy_extreme, -dy_extreme) if low <= dy <= high]
        xs = []
        for dy in candidates:
            disc = (beta * dy) ** 2 - 4.0 * alpha * (gamma * dy * dy - 1.0)
            if disc >= 0:
                root = np.sqrt(disc)
                xs += [(-beta * dy - root) / (2.0 * alpha), (-beta * dy + root) / (2.0 * alpha)]
        if not xs:
            continue
        # a grid step of margin: the ellipse between sampled rows
        c0, c1 = np.searchsorted(cols, [c.x + min(xs) - pad, c.x + max(xs) + pad], side="left")
        c0, c1 = max(int(c0), 0), min(int(c1), cols.size)
        if c1 > c0:
            bands.append(((start, stop), (c0, c1)))
    return bands


def header_cards(components):
    """
    FITS header cards recording ``components``: NGALMOD and one GALMODk string each.

    The string holds ``x= y= reff= n= q= pa= ie= rmax=`` (0-based pixels, radians,
    data units); :func:`components_from_header` reads it back.
    """
    cards = {"NGALMOD": len(components)}
    for k, c in enumerate(list(components)[:99], start=1):
        cards[f"GALMOD{k}"] = (
            f"x={c.x:.2f} y={c.y:.2f} reff={c.r_eff:.2f} n={c.n:.3f} q={c.axis_ratio:.3f} "
            f"pa={c.theta:.4f} ie={c.intensity:.5g} rmax={c.r_max:.1f}"
        )
    return cards


def components_from_header(header):
    """The components recorded by :func:`header_cards` in a FITS header (empty if none)."""
    components = []
    for k in range(1, int(header.get("NGALMOD", 0)) + 1):
        values = dict(item.split("=", 1) for item in str(header[f"GALMOD{k}"]).split())
        components.append(
            SersicComponent(
                y=float(values["y"]), x=float(values["x"]), intensity=float(values["ie"]),
                r_eff=float(values["reff"]), n=float(values["n"]), axis_ratio=float(values["q"]),
                theta=float(values["pa"]), r_max=float(values.get("rmax", "inf")),
            )
        )
    return components
