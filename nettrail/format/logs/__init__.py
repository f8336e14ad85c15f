"""One module per log, each defining LOG (nettrail.format.log.Log): the
format package finds them here, so a new probe's log is one new module."""
