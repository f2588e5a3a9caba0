"""Blockwise knowledge distillation (BKD): how well each option of each slot can imitate the
mothernet's slot.

:mod:`~nas.bkd.config` (settings), :mod:`~nas.bkd.features` (the teacher's features, once, on
disk), :mod:`~nas.bkd.student` (one option's student: train and score),
:mod:`~nas.bkd.run` (a whole run: resume, executors, the library), :mod:`~nas.bkd.library`
(the BKD library file; no torch) and :mod:`~nas.bkd.executor` (where tasks run).
"""
