"""``donna experiment``: the paper's claims checked on a finished ``donna run`` folder.

:mod:`~nas.experiments.runs` (open a finished run, check it; measure and finetune the picks of
any front, cached by architecture), :mod:`~nas.experiments.filter_ablation` (searching the
unfiltered against the filtered space, and a sweep of the filter threshold),
:mod:`~nas.experiments.cost` (the same search priced by MACs and by the LUT, measured whole).
Outputs go to ``RUN_DIR/experiments/<name>/``; ``report.md`` links them.
"""
