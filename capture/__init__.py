"""nettrail capture: load the probes, run the window, write the logs, CLI."""
