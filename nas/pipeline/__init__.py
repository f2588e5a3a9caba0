"""``donna run``: the whole pipeline in one folder, resumable stage by stage.

:mod:`~nas.pipeline.config` (settings, presets), :mod:`~nas.pipeline.state` (``run.json``),
:mod:`~nas.pipeline.stages` (one function per stage), :mod:`~nas.pipeline.run` (the driver),
:mod:`~nas.pipeline.picks` (finetune or validate architectures of a Pareto file),
:mod:`~nas.pipeline.report` (``report.md`` and its plots).
"""
