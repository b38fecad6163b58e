"""Survey scale: many pointings and filters on dask.distributed, restartable.

- :func:`load_survey_config` reads and validates the TOML configuration;
- :func:`plan_survey` turns it into a graph of :class:`ProductTask`;
- :func:`run_products` makes the out-of-date products (on a ``distributed.Client``
  or serially), writing a manifest beside each product and provenance keywords
  in its FITS headers; :func:`format_summary` prints the final table;
- :func:`prepare_workers` imports jwst on every worker of a cluster ahead of the
  first product (optional; ``jwst-ceers survey`` does it for its local cluster).

On a SLURM cluster (``pip install dask-jobqueue``; every node must see the input
and output folders at the same paths and have jwst_ceers installed)::

    from dask_jobqueue import SLURMCluster
    from distributed import Client
    from jwst_ceers.survey import format_summary, load_survey_config, plan_survey, run_products

    cluster = SLURMCluster(cores=1, processes=1, memory="16GB", walltime="04:00:00",
                           queue="normal", account="myproject",
                           job_script_prologue=["export STPIPE_DISABLE_CRDS_STEPPARS=true"])
    cluster.adapt(minimum_jobs=1, maximum_jobs=40)   # one product per job at a time
    results = run_products(plan_survey(load_survey_config("survey.toml")), client=Client(cluster))
    print(format_summary(results))

or keep such a cluster running and point the command at its scheduler:
``jwst-ceers survey survey.toml --scheduler tcp://<host>:<port>``.
"""

__all__ = [
    "ProductResult",
    "ProductTask",
    "SurveyConfig",
    "check_step_parameters",
    "execute_product",
    "format_summary",
    "load_survey_config",
    "plan_survey",
    "prepare_workers",
    "run_products",
]

from jwst_ceers.survey.config import SurveyConfig, check_step_parameters, load_survey_config
from jwst_ceers.survey.engine import ProductResult, ProductTask, execute_product, format_summary, run_products
from jwst_ceers.survey.plan import plan_survey
from jwst_ceers.survey.worker_process import prepare_workers
