"""Neural architecture search: block specs, search spaces, and (later) BKD and NSGA-II."""
