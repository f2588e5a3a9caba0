"""The vocabulary every layer shares: block specs and architectures (:mod:`~nas.core.specs`),
search spaces (:mod:`~nas.core.spaces`), the module builder (:mod:`~nas.core.modules`),
domain errors, file helpers, environment settings, progress bars and the pricer protocol."""
