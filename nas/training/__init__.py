"""Training: networks of blocks (:mod:`~nas.training.networks`), the one training loop
(:mod:`~nas.training.loop`), where it runs (:mod:`~nas.training.device`: no torch at import),
checkpoints (:mod:`~nas.training.checkpoint`), mothernets (:mod:`~nas.training.mothernet`).
Every module but this one and ``device`` imports torch."""
