from capture.cli import entry

entry()
