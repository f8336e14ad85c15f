"""nettrail: capture per-process TCP bandwidth, TCP sessions and DNS lookups
with eBPF for a fixed window, and render one self-contained HTML report.

This package is the shared core: the CLI, errors and exit statuses, the log
format contract, safe file writing, units. `nettrail.capture` and
`nettrail.report` meet only here and in the capture directory."""

VERSION = "0.2.0"
