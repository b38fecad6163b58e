"""Tier sets as step parameters: one validator and one spec formatter for every step.

A step describes its mask tiers with four parallel lists ``<prefix>_kernel_fwhm``,
``<prefix>_nsigma``, ``<prefix>_npixels`` and ``<prefix>_dilate`` (PedestalSkySub:
prefix ``tier``; MosaicBackground: ``nircam`` and ``hst``). :func:`tiers_from_step`
turns them into `MaskTier` objects or raises a `CeersParameterError` naming them;
:func:`tier_spec_lines` writes the spec lines whose defaults ARE a shipped tier set, so
that the constants in :mod:`jwst_ceers.masking.tiers` are the one source of truth.
"""

from jwst_ceers.errors import CeersParameterError
from jwst_ceers.masking.tiers import MaskTier

__all__ = ["TIER_FIELDS", "check_tier_values", "tier_list_bounds", "tier_spec_lines", "tiers_from_step"]

#: MaskTier field -> (spec type, comment, smallest value, largest value) of the parameter
#: lists. The spec's ``min``/``max`` bound a list's LENGTH (configobj has no per-value
#: bound for lists); the value bounds here are checked when the step is made
#: (`jwst_ceers._step.ParameterErrors`) and again when the tiers are built.
TIER_FIELDS = {
    "kernel_fwhm": ("float_list", "Gaussian kernel FWHM, pixels", 0.0, 1000.0),
    "nsigma": ("float_list", "threshold in sigma of each smoothed image", 0.01, 1000.0),
    "npixels": ("int_list", "minimum connected pixels", 1, 1_000_000),
    "dilate": ("float_list", "dilation disk radius, pixels", 0.0, 1000.0),
}


def tier_list_bounds(prefix):
    """``{"<prefix>_<field>": (smallest, largest)}``: the per-value bounds of a step's tier lists."""
    return {f"{prefix}_{name}": (low, high) for name, (_, _, low, high) in TIER_FIELDS.items()}


def check_tier_values(label, values_by_name, bounds):
    """
    Check every value of every list against its bounds.

    Parameters
    ----------
    label : str
        Who asks (step alias), for the message.
    values_by_name : dict
        ``{parameter name: list of values}`` (None values are skipped).
    bounds : dict
        ``{parameter name: (smallest, largest)}``.

    Raises
    ------
    CeersParameterError
        Naming the parameter, the position and the value out of bounds.
    """
    for name, (low, high) in bounds.items():
        values = values_by_name.get(name)
        for index, value in enumerate(values or ()):
            try:
                ok = low <= float(value) <= high
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise CeersParameterError(
                    f"{label}: {name}[{index}] = {value!r} is out of bounds; each value must be in [{low:g}, {high:g}]"
                )


def _format(value):
    return str(int(value)) if isinstance(value, int) else repr(float(value))


def tier_spec_lines(prefix, tiers, *, label, max_tiers=15):
    """
    Spec lines ``<prefix>_<field> = <type>(min=1, max=..., default=list(...))  # comment``.

    Parameters
    ----------
    prefix : str
        Parameter name prefix.
    tiers : sequence of MaskTier
        The default tier set.
    label : str
        Start of each comment (e.g. ``"NIRCam tiers"``).
    max_tiers : int
        Largest number of tiers accepted.

    Returns
    -------
    str
        Four spec lines (newline-terminated), indented like a step's spec.
    """
    lines = []
    for name, (kind, comment, low, high) in TIER_FIELDS.items():
        values = ", ".join(_format(getattr(t, name)) for t in tiers)
        lines.append(
            f"    {prefix}_{name} = {kind}(min=1, max={max_tiers}, default=list({values}))"
            f"  # {label}: {comment}; 1-{max_tiers} tiers, each value in [{low:g}, {high:g}]\n"
        )
    return "".join(lines)


def tiers_from_step(step, prefix="tier"):
    """
    The `MaskTier` set described by ``step``'s ``<prefix>_*`` parameter lists.

    Parameters
    ----------
    step : stpipe Step
        Holds the lists as attributes.
    prefix : str
        Parameter name prefix (``tier`` for PedestalSkySub).

    Returns
    -------
    tuple of MaskTier

    Raises
    ------
    CeersParameterError
        Lists of different lengths, or a value MaskTier refuses; the message names the
        step and the parameters.
    """
    label = getattr(step, "class_alias", None) or type(step).__name__
    names = [f"{prefix}_{name}" for name in TIER_FIELDS]
    values = [list(getattr(step, name)) for name in names]
    check_tier_values(label, dict(zip(names, values, strict=True)), tier_list_bounds(prefix))
    if len({len(v) for v in values}) != 1:
        lengths = ", ".join(f"{n}={len(v)}" for n, v in zip(names, values, strict=True))
        raise CeersParameterError(
            f"{label}: the tier lists must have equal lengths (one value per tier, the same length for all): {lengths}"
        )
    try:
        return tuple(MaskTier(float(f), float(s), int(p), float(d)) for f, s, p, d in zip(*values, strict=True))
    except ValueError as exc:
        raise CeersParameterError(f"{label}: {prefix} tier parameters ({', '.join(names)}): {exc}") from exc
