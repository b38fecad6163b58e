"""Survey scale: many pointings and filters on dask.distributed, restartable.

- :func:`load_survey_config` reads and validates the TOML configuration;
- :func:`plan_survey` turns it into a graph of :class:`ProductTask`;
- :func:`run_products` makes the out-of-date products (on a ``distributed.Client``
  or serially), writing a manifest beside each product and provenance keywords
  in its FITS headers; :func:`format_summary` prints the final table.
"""

__all__ = [
    "ProductResult",
    "ProductTask",
    "SurveyConfig",
    "execute_product",
    "format_summary",
    "load_survey_config",
    "plan_survey",
    "run_products",
]

from jwst_ceers.survey.config import SurveyConfig, load_survey_config
from jwst_ceers.survey.engine import ProductResult, ProductTask, execute_product, format_summary, run_products
from jwst_ceers.survey.plan import plan_survey
