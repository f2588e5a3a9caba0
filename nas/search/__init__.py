"""NSGA-II over a (filtered) search space: summed BKD MSE vs estimated latency.

A genome is one option index per slot. Both objectives are computed for the whole population
at once from tables made before the search:

* **surrogate**: ``sum_i nmse[i][g_i]`` from the BKD library (DONNAv2's accuracy surrogate);
* **latency**: ``stem + sum_i slot_i(state_i, g_i) + head(state_n)`` where ``state_i`` is the
  input channel count of slot ``i`` (it depends on the previous slot's width). The per-slot
  tables hold every (input channels, option) pair of the space, priced block by block by a
  :class:`~nas.core.pricing.BlockPricer` in one call before the search: in ``lut`` mode every
  missing block is named in one error, in ``measure`` mode the missing blocks are measured
  once. With one width per stage (the quick spaces) there is one state per slot and latency is
  exactly additive.

pymoo's NSGA-II runs with integer random sampling, SBX crossover and polynomial mutation with a
rounding repair, duplicate elimination and an explicit seed (same seed, same front). A latency
budget is a constraint ``latency <= budget``; a budget below the fastest architecture of the
space (found exactly by dynamic programming over the states) is an error giving that value.
The reported front is the non-dominated feasible set of *every* architecture evaluated during
the search (an archive that contains the final population's front). A space with no more
architectures than the population is enumerated instead (``method: enumeration``).

Modules (import from them; this file imports nothing):

* :mod:`nas.search.config`: :class:`SearchConfig` and its defaults;
* :mod:`nas.search.objectives`: the latency model (:func:`latency_model`), the surrogate and
  the non-dominated sort (numpy only);
* :mod:`nas.search.problem`: the one pymoo problem (:class:`SearchProblem`, shared by the
  search, the exact-front enumeration and the benchmark) and the NSGA-II recipe;
* :mod:`nas.search.result`: :class:`ParetoEntry`, :class:`SearchResult`, the Pareto file
  (``pareto.json``: :func:`load_pareto`) and :func:`parse_pick` / :func:`pick`, the one
  parser of ``PATH:INDEX`` references;
* :mod:`nas.search.plot`: the front plot (``pareto.png``, matplotlib);
* :mod:`nas.search.run`: :func:`run_search`, :func:`exact_front`, :func:`hypervolume_ratio`.

Heavy imports (pymoo, matplotlib) happen only in :mod:`nas.search.problem`,
:mod:`nas.search.plot` and inside the functions that need them.
"""
