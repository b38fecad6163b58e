"""VarianceHoleFill: zero variance (bad pixels) becomes +inf before drizzling."""

__all__ = ["fill_zero_variance"]

from jwst_ceers.varfill.hole_fill import fill_zero_variance
