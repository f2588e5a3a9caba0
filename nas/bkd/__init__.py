"""Blockwise knowledge distillation (BKD): how well each option of each slot can imitate the
mothernet's slot.

:mod:`~nas.bkd.config` (settings), :mod:`~nas.bkd.run` (a whole run: groups, executors, the
library, resume), :mod:`~nas.bkd.plan` (which options train together) and
:mod:`~nas.bkd.memory` (their training memory; no torch), :mod:`~nas.bkd.shared` (one group
of options on one stream of batches with one teacher forward per batch),
:mod:`~nas.bkd.group` (a group's task, batch stream and checkpoint), :mod:`~nas.bkd.student`
(one option's student: blocks, adapter, seed, weights), :mod:`~nas.bkd.library` (the BKD
library file; no torch) and :mod:`~nas.bkd.executor` (where tasks run).
"""
