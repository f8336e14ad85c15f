from nettrail.cli import entry

entry()
