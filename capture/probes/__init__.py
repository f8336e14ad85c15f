"""The probes, each in its own module with its decoder (its C is bpf/NAME.bpf.c).

A new probe: its .bpf.c, its struct in bpf/nettrail.h (and the mirror in
events.py), a module here with a Probe subclass, an entry below and its log in
nettrail/logformat.py. The window and check loop over PROBE_CLASSES."""

from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.probes.dns import DnsProbe
from nettrail.capture.probes.sessions import SessionsProbe

# start order: sessions reads socket owners from bandwidth's counters
PROBE_CLASSES = (BandwidthProbe, SessionsProbe, DnsProbe)
