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
                           queue="normal", account="myproject")
    cluster.adapt(minimum_jobs=1, maximum_jobs=40)   # one product per job at a time
    results = run_products(plan_survey(load_survey_config("survey.toml")), client=Client(cluster))
    print(format_summary(results))

or keep such a cluster running and point the command at its scheduler:
``jwst-ceers survey survey.toml --scheduler tcp://<host>:<port>``.

``run_products`` holds ``<folder>/.survey.lock`` of every output folder for the whole
run (as the command does), so a second run on the same folders is refused at once.
Each product gets a memory budget of 70% of its worker's memory limit (here 11.2 GB)
unless the configuration sets ``memory_budget_gb``.

The parts, one job each: ``config`` (the TOML file), ``plan`` (config -> graph),
``graph`` (:class:`ProductTask`, order, priorities), ``execution`` (decide / run /
publish one product), ``manifest`` and ``provenance`` (what a product was made
from), ``staging`` (write aside, rename into place), ``log_capture`` (each product's
log file), ``lock`` (one run per output folder), ``runner`` (serial run, lock),
``dask_run`` (run on a client), ``console`` (progress lines and bar), ``summary``
(final table), ``worker_process`` (what each worker needs), ``tasks`` (the task
functions that make CEERS products).
"""

__all__ = [
    "NotFromAProduct",
    "ProductResult",
    "ProductTask",
    "SurveyConfig",
    "check_step_parameters",
    "check_survey_outputs",
    "execute_product",
    "format_summary",
    "load_survey_config",
    "order_tasks",
    "plan_survey",
    "prepare_workers",
    "run_products",
    "scheduling_priorities",
]

from jwst_ceers.survey.config import SurveyConfig, check_step_parameters, check_survey_outputs, load_survey_config
from jwst_ceers.survey.execution import execute_product
from jwst_ceers.survey.graph import ProductTask, order_tasks, scheduling_priorities
from jwst_ceers.survey.log_capture import NotFromAProduct
from jwst_ceers.survey.plan import plan_survey
from jwst_ceers.survey.results import ProductResult
from jwst_ceers.survey.runner import run_products
from jwst_ceers.survey.summary import format_summary
from jwst_ceers.survey.worker_process import prepare_workers
