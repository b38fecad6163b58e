"""FFT smoothing, circular dilation and block resampling for large float32 images.

Memory and passes are kept low for 50-megapixel mosaics (issue 16): spectra are
inverted in place (a 2-D ``irfft2`` holds a complex copy of its input besides the
output; the same transforms made axis by axis, with the same normalisation applied
last, give the same bits without it), inputs already zero-padded to the transform
shape are transformed without a padded copy, and block reductions run over row
chunks that stay in cache (optionally on several threads: numpy releases the GIL).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
import scipy.ndimage

__all__ = [
    "FWHM_TO_SIGMA",
    "FourierImage",
    "transform_shape",
    "for_row_chunks",
    "gaussian_smooth",
    "dilate_disk",
    "block_mean",
    "block_means",
    "block_any",
    "expand_blocks",
]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

# Disks up to this radius are dilated with 2r+1 running maxima instead of 3 FFTs.
SPAN_DILATION_MAX_RADIUS = 4


def _padded_shape(shape, pad):
    return tuple(scipy.fft.next_fast_len(int(n + pad), real=True) for n in shape)


def transform_shape(shape, max_fwhm):
    """Zero-padded FFT shape that `FourierImage` uses for an image of ``shape`` (4 sigma of ``max_fwhm``)."""
    return _padded_shape(shape, int(np.ceil(4 * max_fwhm * FWHM_TO_SIGMA)) + 1)


def for_row_chunks(function, nrows, *, rows, threads=1):
    """
    Call ``function(start, stop)`` over consecutive row ranges of ``rows`` rows.

    With ``threads`` > 1 the ranges are shared by a thread pool (the numpy work inside
    releases the GIL); ``function`` must only write rows of its own range.
    """
    rows = max(1, int(rows))
    bounds = [(start, min(start + rows, nrows)) for start in range(0, nrows, rows)]
    if threads <= 1 or len(bounds) < 2:
        for start, stop in bounds:
            function(start, stop)
        return
    with ThreadPoolExecutor(max_workers=int(threads)) as pool:
        for future in [pool.submit(function, start, stop) for start, stop in bounds]:
            future.result()


def _chunk_rows(row_bytes, *, target=1 << 20, multiple=1):
    """Rows per chunk so that a chunk holds about ``target`` bytes (a multiple of ``multiple``)."""
    rows = max(1, target // max(1, int(row_bytes)))
    return max(multiple, rows - rows % multiple)


def _inverse_rfft2_in_place(spectrum, shape, workers):
    """
    ``scipy.fft.irfft2(spectrum, s=shape)``, bit for bit, overwriting ``spectrum``.

    pocketfft's 2-D c2r transforms axis 0 (factor 1) into a complex temporary, then
    axis 1 with the factor 1/(ny nx). Here axis 0 is transformed in place and the
    factor applied after the last axis, the same float32 multiplication.
    """
    scipy.fft.ifft(spectrum, axis=0, norm="forward", overwrite_x=True, workers=workers)
    out = scipy.fft.irfft(spectrum, n=shape[1], axis=1, norm="forward", workers=workers)
    out *= np.float32(1 / np.longdouble(shape[0] * shape[1]))
    return out


class FourierImage:
    """
    Spectrum of a zero-padded image, reused for several Gaussian smoothings.

    Parameters
    ----------
    image : ndarray
        2-D float image without NaNs (already background-subtracted: padding is 0).
    max_fwhm : float
        Largest FWHM (pixels) that will be asked for; sets the padding (4 sigma).
    workers : int, optional
        Threads for scipy.fft.
    image_shape : tuple of int, optional
        If given, ``image`` is already zero-padded to ``transform_shape(image_shape,
        max_fwhm)`` (the image in its top-left corner): it is transformed without a
        padded copy.
    """

    def __init__(self, image, *, max_fwhm, workers=2, image_shape=None):
        image = np.asarray(image, dtype=np.float32)
        self.image_shape = image.shape if image_shape is None else tuple(image_shape)
        self.workers = workers
        self.shape = transform_shape(self.image_shape, max_fwhm)
        if image_shape is not None and image.shape != self.shape:
            raise ValueError(f"FourierImage: padded image of shape {image.shape}, expected {self.shape}")
        self.spectrum = scipy.fft.rfft2(image, s=self.shape, workers=workers)
        self.fy = scipy.fft.fftfreq(self.shape[0]).astype(np.float32)
        self.fx = scipy.fft.rfftfreq(self.shape[1]).astype(np.float32)

    def smoothed(self, fwhm, *, last=False):
        """
        The image convolved with a unit-sum Gaussian of FWHM ``fwhm``.

        A new float32 array (a view of the inverse transform's padded output: copying
        it out took longer than the transform's last axis and held another image).
        With ``last=True`` the spectrum is multiplied in place and released (the
        object cannot smooth again): no second complex image is held.
        """
        if self.spectrum is None:
            raise ValueError("FourierImage: the spectrum was released by smoothed(last=True)")
        sigma = fwhm * FWHM_TO_SIGMA
        factor = np.float32(-2.0 * np.pi**2 * sigma**2)
        if last:
            spectrum, self.spectrum = self.spectrum, None
            spectrum *= np.exp(factor * self.fy**2)[:, None]
        else:
            spectrum = self.spectrum * np.exp(factor * self.fy**2)[:, None]
        spectrum *= np.exp(factor * self.fx**2)[None, :]
        # the product is ours: transformed in place (no complex copy of it)
        full = _inverse_rfft2_in_place(spectrum, self.shape, self.workers)
        del spectrum
        ny, nx = self.image_shape
        return full[:ny, :nx]


def gaussian_smooth(image, *, fwhm, workers=2):
    """
    Convolve ``image`` with a unit-sum circular Gaussian of FWHM ``fwhm`` pixels.

    The image is zero-padded by 4 sigma (so it must already be background-subtracted
    and NaN-free) and multiplied in Fourier space by the Gaussian's analytic transfer
    function, so no kernel array is built or transformed.

    Parameters
    ----------
    image : ndarray
        2-D float image without NaNs.
    fwhm : float
        Full width at half maximum in pixels; 0 returns a float32 copy.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    ndarray
        New float32 array of the same shape.
    """
    if fwhm <= 0:
        return np.array(image, dtype=np.float32)
    return FourierImage(image, max_fwhm=fwhm, workers=workers).smoothed(fwhm)


def dilate_disk(mask, *, radius, workers=2):
    """
    Binary dilation of ``mask`` by a disk ``x**2 + y**2 <= radius**2`` (FFT, exact).

    A pixel is set when any mask pixel lies within the disk around it. The mask is
    convolved with the disk in float32 through FFTs and thresholded at one half, which
    is exact for disks of up to ~10^6 pixels.

    Parameters
    ----------
    mask : ndarray of bool
        2-D mask.
    radius : float
        Disk radius in pixels; values < 1 return a copy of the mask.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    ndarray of bool
        New dilated mask.
    """
    mask = np.asarray(mask, dtype=bool)
    r = int(np.floor(radius))
    if r < 1 or not mask.any():
        return mask.copy()
    if r <= SPAN_DILATION_MAX_RADIUS:
        return _dilate_disk_by_spans(mask, radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (xx * xx + yy * yy <= radius * radius).astype(np.float32)
    shape = _padded_shape(mask.shape, 2 * r + 1)
    padded = np.zeros(shape, dtype=np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    spectrum = scipy.fft.rfft2(padded, workers=workers)
    del padded
    spectrum *= _sparse_rows_rfft2(disk, shape, workers)
    full = _inverse_rfft2_in_place(spectrum, shape, workers)
    del spectrum
    return full[r : r + mask.shape[0], r : r + mask.shape[1]] > 0.5


def _sparse_rows_rfft2(small, shape, workers):
    """
    ``scipy.fft.rfft2(small, s=shape)`` bit for bit, transforming only ``small``'s rows along x.

    pocketfft's 2-D r2c transforms the last axis, then axis 0 in place: the rows of the
    zero padding transform to exact zeros, so only the kernel's rows are computed.
    """
    spectrum = np.zeros((shape[0], shape[1] // 2 + 1), dtype=np.complex64)
    spectrum[: small.shape[0]] = scipy.fft.rfft(small, n=shape[1], axis=1, workers=workers)
    scipy.fft.fft(spectrum, axis=0, overwrite_x=True, workers=workers)
    return spectrum


def _dilate_disk_by_spans(mask, radius):
    """Disk dilation as the union of row-shifted 1-D maximum filters (cheap for small disks)."""
    r = int(np.floor(radius))
    as_bytes = mask.view(np.uint8)
    out = np.zeros_like(mask)
    for dy in range(-r, r + 1):
        half_width = int(np.floor(np.sqrt(radius * radius - dy * dy)))
        row = scipy.ndimage.maximum_filter1d(as_bytes, 2 * half_width + 1, axis=1).view(bool)
        if dy > 0:
            out[dy:] |= row[:-dy]
        elif dy < 0:
            out[:dy] |= row[-dy:]
        else:
            out |= row
    return out


def _halve(array, combine, dtype=None, *, threads=1, valid=None):
    """
    Combine 2 x 2 blocks (odd edges padded with zeros/False): x pairs first, then y pairs.

    Runs over chunks of rows (padded chunk by chunk), so the half-width intermediate
    stays in cache and no padded copy of the whole array is made; the values are those
    of the whole-array operations. With ``valid``, ``array`` is first set to 0 where
    ``valid`` is False and cast to ``dtype``, chunk by chunk (no full-size masked copy).
    """
    ny, nx = array.shape
    out_dtype = np.dtype(dtype) if dtype is not None else combine(array[:1, :1], array[:1, :1]).dtype
    out = np.empty((-(-ny // 2), -(-nx // 2)), dtype=out_dtype)

    def rows(start, stop):
        chunk = array[2 * start : 2 * stop]
        if valid is not None:
            chunk = np.where(valid[2 * start : 2 * stop], chunk, out_dtype.type(0)).astype(out_dtype, copy=False)
        if chunk.shape[0] % 2 or nx % 2:
            chunk = np.pad(chunk, ((0, chunk.shape[0] % 2), (0, nx % 2)))
        columns = combine(chunk[:, 0::2], chunk[:, 1::2], dtype=dtype)
        combine(columns[0::2], columns[1::2], dtype=dtype, out=out[start:stop])

    for_row_chunks(rows, out.shape[0], rows=_chunk_rows(2 * nx * array.itemsize), threads=threads)
    return out


def _is_power_of_two(factor):
    if int(factor) != factor or factor < 1:
        raise ValueError(f"block factor must be a positive integer, got {factor}")
    return not int(factor) & (int(factor) - 1)


def _strided_combine(array, factor, combine, dtype):
    """Combine ``factor`` x ``factor`` blocks for any integer factor (strided slices)."""
    shape = (-(-array.shape[0] // factor), -(-array.shape[1] // factor))
    out = np.zeros(shape, dtype=dtype)
    for i in range(factor):
        for j in range(factor):
            part = array[i::factor, j::factor]
            view = out[: part.shape[0], : part.shape[1]]
            combine(view, part, out=view, casting="unsafe")
    return out


def block_mean(image, valid, *, factor):
    """
    Mean of the valid pixels in ``factor`` x ``factor`` blocks (fastest for powers of two).

    Returns
    -------
    mean : ndarray (float32)
        Block means (0 where a block has no valid pixel), shape ceil(shape / factor).
    fraction : ndarray (float32)
        Fraction of valid pixels per block (pixels beyond the image edge count as invalid).
    """
    factor = int(factor)
    power_of_two = _is_power_of_two(factor)
    valid = np.asarray(valid, dtype=bool)
    total = np.where(valid, image, np.float32(0)).astype(np.float32, copy=False)
    if factor == 1:
        return total, valid.astype(np.float32)
    if power_of_two:
        # counts as small integers (exact; a quarter of the float32 traffic), floats at the end
        halvings = int(np.log2(factor))
        count = valid.view(np.uint8)
        count_dtype = np.uint8 if halvings <= 3 else np.uint32
        for _ in range(halvings):
            total = _halve(total, np.add, np.float32)
            count = _halve(count, np.add, count_dtype)
        count = count.astype(np.float32)
    else:
        total = _strided_combine(total, factor, np.add, np.float32)
        count = _strided_combine(valid, factor, np.add, np.float32)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return mean, count / np.float32(factor * factor)


def block_means(image, valid, *, factors, zero_outside_valid=False, threads=1):
    """
    :func:`block_mean` for several power-of-two ``factors`` at once (bitwise the same).

    The sums are halved once along one chain (factor 8 continues from factor 2's
    sums), so the full-resolution passes are made once instead of once per factor.

    Parameters
    ----------
    image : ndarray
        2-D float32 image.
    valid : ndarray of bool or uint8
        True (1) where a pixel is used.
    factors : iterable of int
        Powers of two.
    zero_outside_valid : bool, optional
        ``image`` is already 0 wherever ``valid`` is False (no masked copy is made).
    threads : int, optional
        Threads for the full-resolution halving.

    Returns
    -------
    dict
        ``{factor: (mean, fraction)}``.
    """
    factors = sorted({int(f) for f in factors})
    if not all(_is_power_of_two(f) for f in factors):
        raise ValueError(f"block_means: factors must be powers of two, got {factors}")
    valid = np.asarray(valid)
    if valid.dtype != np.uint8:
        valid = valid.astype(bool, copy=False)
    if zero_outside_valid:
        total = np.asarray(image, dtype=np.float32)
    elif factors and factors[0] == 1:
        total = np.where(valid, image, np.float32(0)).astype(np.float32, copy=False)
    else:
        # the invalid pixels zeroed chunk by chunk in the first halving (threaded, no
        # full-size masked copy; the same values)
        total = None
    out = {}
    if factors and factors[0] == 1:
        out[1] = (total if not zero_outside_valid else total.copy(), valid.astype(np.float32))
        factors = factors[1:]
        if factors and not zero_outside_valid:
            total = total.copy()  # the factor-1 mean is returned: not overwritten below
    if not factors:
        return out
    count = valid.view(np.uint8)
    factor = 1
    for target in factors:
        while factor < target:
            if factor * 2 > 8 and count.dtype == np.uint8:
                count = count.astype(np.uint32)  # exact integer counts either way (uint8 up to 8 x 8)
            if total is None:
                total = _halve(np.asarray(image), np.add, np.dtype(np.float32), threads=threads, valid=valid)
            else:
                total = _halve(total, np.add, np.float32, threads=threads)
            count = _halve(count, np.add, count.dtype, threads=threads)
            factor *= 2
        counts = count.astype(np.float32)
        mean = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
        out[target] = (mean, counts / np.float32(target * target))
    return out


def block_any(mask, *, factor, threads=1):
    """
    True for every ``factor`` x ``factor`` block holding at least one True pixel.

    ``mask`` may be boolean or an unsigned integer bit mask (a block is True where any
    of its pixels is non-zero; no boolean copy of it is made).
    """
    factor = int(factor)
    mask = np.asarray(mask)
    if mask.dtype.kind == "u" and _is_power_of_two(factor):
        if factor == 1:
            return mask != 0
        out = mask
        for _ in range(int(np.log2(factor))):
            out = _halve(out, np.bitwise_or, threads=threads)
        return out != 0
    if not _is_power_of_two(factor):
        return _strided_combine(np.asarray(mask, dtype=bool), factor, np.logical_or, bool)
    out = np.array(mask, dtype=bool)
    for _ in range(int(np.log2(factor))):
        out = _halve(out, np.logical_or, threads=threads)
    return out


def expand_blocks(blocks, *, factor, shape):
    """Repeat each block value over its ``factor`` x ``factor`` pixels, cropped to ``shape``."""
    if factor == 1:
        return blocks
    expanded = np.repeat(np.repeat(blocks, factor, axis=0), factor, axis=1)
    return expanded[: shape[0], : shape[1]]
