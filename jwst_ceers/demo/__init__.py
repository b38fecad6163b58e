"""The ``jwst-ceers demo`` chain and the quality measures it reports."""
