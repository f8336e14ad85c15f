"""nettrail report: read a capture directory, aggregate, chart, render HTML."""
