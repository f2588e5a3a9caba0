"""Training: networks of blocks (:mod:`~nas.training.networks`), the one training loop
(:mod:`~nas.training.loop`), checkpoints (:mod:`~nas.training.checkpoint`) and mothernets
(:mod:`~nas.training.mothernet`). Every module but this one imports torch."""
