"""Hardware-aware NAS after DONNAv2: the vocabulary (:mod:`nas.core`), data, training, BKD,
the filter, NSGA-II search, finetuning, the ``donna run`` pipeline and the command lines.
The layers and their rules: docs/architecture.md."""
