"""The survey's product graph: what a product is, in which order products run.

A :class:`ProductTask` names a task function by its dotted path
(``"package.module:function"``), the input files, JSON parameters, the folder it
writes to and the products it depends on. :func:`order_tasks` checks a graph and
puts it in dependency order; :func:`scheduling_priorities` ranks it for dask.
Nothing here runs a product.
"""

import dataclasses
import re
from pathlib import Path

__all__ = ["ProductTask", "order_tasks", "scheduling_priorities"]

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class ProductTask:
    """
    One product of the survey graph.

    Attributes
    ----------
    key : str
        Unique key, e.g. ``"nircam1/F150W"``.
    pointing : str
        Pointing (or tile) the product belongs to.
    label : str
        Short label within the pointing (filter name, ``"mosaic_bkg"`` ...).
    name : str
        Product name: manifest ``<name>.manifest.json`` and log ``logs/<name>.log``.
    function : str
        Dotted name of the task function, ``"module:function"`` or ``"module.function"``.
    output_dir : str
        Folder the outputs (and manifest) go to.
    inputs : dict
        Input files by role: ``{"members": [...], "abs_refcat": [...]}``. Their
        content (not their folder) is hashed into the manifest, so the task
        receives paths without paths entering the parameter digest.
    params : dict
        JSON-serialisable parameters (digested into the manifest).
    depends : tuple of str
        Keys of the products whose outputs this one needs.
    cost : float
        Relative amount of work (e.g. bytes of input), used only to order work on
        a cluster: the products with the longest remaining chain of work start
        first. Not part of the manifest.
    partial_upstream : bool
        When True the product is still made if some of its dependencies could not
        be made from their data (they failed with a
        :class:`jwst_ceers.errors.CeersDataError`, e.g. an empty mosaic); it is then
        made from the others, and its reason names the ones left out. Other
        failures of a dependency (a crash, a killed worker) still stop it.
    run_options : dict
        How to run the product, not what to make (e.g. ``{"memory_budget_gb": 8}``):
        not digested, not in the manifest, so changing it never remakes a product.
        Passed to the task function as ``run_options=`` when it accepts that keyword.
    """

    key: str
    pointing: str
    label: str
    name: str
    function: str
    output_dir: str
    inputs: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    depends: tuple = ()
    cost: float = 0.0
    partial_upstream: bool = False
    run_options: dict = dataclasses.field(default_factory=dict)


def order_tasks(tasks):
    """
    Check a product graph and return its tasks in dependency order.

    Raises
    ------
    ValueError
        On duplicate keys or names in one folder, bad names, unknown
        dependencies or cycles.
    """
    by_key = {}
    names = set()
    for task in tasks:
        if task.key in by_key:
            raise ValueError(f"duplicate product key {task.key!r}")
        if not _NAME_OK.match(task.name):
            raise ValueError(f"product name {task.name!r} is not a plain file name")
        folder_name = (str(Path(task.output_dir).absolute()), task.name)
        if folder_name in names:
            raise ValueError(f"two products named {task.name!r} in {task.output_dir}")
        names.add(folder_name)
        by_key[task.key] = task
    ordered, state = [], {}

    def visit(key, chain):
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise ValueError("dependency cycle: " + " -> ".join([*chain, key]))
        state[key] = "visiting"
        for dep in by_key[key].depends:
            if dep not in by_key:
                raise ValueError(f"product {key!r} depends on unknown product {dep!r}")
            visit(dep, [*chain, key])
        state[key] = "done"
        ordered.append(by_key[key])

    for task in tasks:
        visit(task.key, [])
    return ordered


def scheduling_priorities(ordered):
    """
    Dask priorities of a product graph: longest remaining chain of work first.

    A product's rank is its ``cost`` plus the largest rank among the products
    that depend on it (the "upward rank" of list scheduling). On few workers this
    starts the big products of every pointing before the small ones, instead of
    leaving one big product to run alone at the end.

    Parameters
    ----------
    ordered : list of ProductTask
        The graph in dependency order (:func:`order_tasks`).

    Returns
    -------
    dict
        Product key -> integer priority (higher runs first; 0 for the lowest rank).
    """
    dependants = {task.key: [] for task in ordered}
    for task in ordered:
        for dep in task.depends:
            dependants[dep].append(task.key)
    rank = {}
    for task in reversed(ordered):  # dependants come later in dependency order
        rank[task.key] = max(0.0, float(task.cost)) + max((rank[k] for k in dependants[task.key]), default=0.0)
    levels = sorted(set(rank.values()))
    return {key: levels.index(value) for key, value in rank.items()}
