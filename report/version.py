"""The one place the nettrail version is written."""

VERSION = "0.1.0"
