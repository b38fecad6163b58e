"""Size-dependent growth of a source mask, for the wings of large galaxies.

A fixed dilation (CEERS: 19-33 px) leaves the low-surface-brightness wings of large
bright galaxies unmasked, and a background fitted around them is biased high over a
few hundred pixels. Here every connected masked region is grown by a radius
proportional to how much larger it is than a typical small-source mask: a region of
equivalent radius ``r_eq`` grows by ``factor * max(0, r_eq - min_radius)``. The work is
done on a block-reduced grid with one Euclidean distance transform, so it is O(N).
"""

import numpy as np

__all__ = ["grow_masks_by_size"]


def grow_masks_by_size(mask, *, factor=1.0, min_radius=40.0, block=8, exclude=None):
    """
    Grow each connected region of ``mask`` according to its size.

    Parameters
    ----------
    mask : ndarray of bool
        Source mask (True = masked).
    factor : float
        Growth radius per pixel of equivalent radius beyond ``min_radius``; 0 = no growth.
    min_radius : float
        Regions with an equivalent radius (sqrt(area / pi)) below this do not grow.
    block : int
        Block size of the working grid (the growth is rounded up to whole blocks).
    exclude : ndarray of bool, optional
        Pixels never added (e.g. no data).

    Returns
    -------
    ndarray of bool
        New mask (a superset of ``mask``).
    """
    from scipy.ndimage import distance_transform_edt, label

    from jwst_ceers.masking.fft_ops import block_any, expand_blocks

    mask = np.asarray(mask, dtype=bool)
    if factor <= 0 or not mask.any():
        return mask.copy()
    reduced = block_any(mask, factor=block)
    labels, nlabels = label(reduced, structure=np.ones((3, 3), dtype=bool))
    area = np.bincount(labels.ravel(), minlength=nlabels + 1).astype(float) * block * block
    r_eq = np.sqrt(area / np.pi)
    grow = factor * np.maximum(0.0, r_eq - min_radius) / block  # in blocks
    grow[0] = 0.0
    if not np.any(grow > 0.5):
        return mask.copy()
    distance, indices = distance_transform_edt(~reduced, return_indices=True)
    nearest = labels[indices[0], indices[1]]
    added = (distance <= grow[nearest]) & ~reduced
    grown = mask | expand_blocks(added, factor=block, shape=mask.shape)
    if exclude is not None:
        grown &= ~np.asarray(exclude, dtype=bool)
    return grown
