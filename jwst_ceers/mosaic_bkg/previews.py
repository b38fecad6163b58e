"""PNG previews of a MosaicBackground run: mosaic, background and merged mask."""

import numpy as np

from jwst_ceers.atomic_io import atomic_output

__all__ = ["save_previews"]


def save_previews(path, mosaics, result, *, max_pixels=800):
    """Write one PNG with, per mosaic, the data, its background, and the merged mask."""
    # matplotlib is imported only when previews are asked for (it costs ~0.5 s); a Figure
    # with its own Agg canvas leaves the process-wide backend alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    step = max(1, int(np.ceil(max(mosaics[0].data.shape) / max_pixels)))
    nrow = len(mosaics)
    fig = Figure(figsize=(12, 3.6 * nrow))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, 3, squeeze=False)
    for row, (mosaic, background) in enumerate(zip(mosaics, result.backgrounds, strict=True)):
        data = mosaic.data[::step, ::step]
        good = np.isfinite(data)
        lo, hi = np.nanpercentile(data[good], [5, 99]) if good.any() else (0, 1)
        axes[row, 0].imshow(data, origin="lower", vmin=lo, vmax=hi, cmap="gray")
        axes[row, 0].set_title(f"{mosaic.name}")
        bkg = background[::step, ::step]
        axes[row, 1].imshow(np.where(mosaic.nodata[::step, ::step], np.nan, bkg), origin="lower", cmap="viridis")
        axes[row, 1].set_title(f"{mosaic.filter} background")
        axes[row, 2].imshow(result.merged_mask[::step, ::step], origin="lower", cmap="gray_r")
        axes[row, 2].set_title("merged mask")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return path
