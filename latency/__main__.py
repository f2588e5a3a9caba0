from latency.cli import entry

entry()
