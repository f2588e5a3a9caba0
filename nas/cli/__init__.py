"""The command lines: ``latency-profile`` (:mod:`nas.cli.latency_profile`) and ``donna``
(:mod:`nas.cli.donna`), sharing one error boundary and their option declarations
(:mod:`nas.cli.common`)."""
