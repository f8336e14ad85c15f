"""The probes, each in its own module with its decoder (its C is bpf/NAME.bpf.c).

Every Probe subclass defined here whose `name` is a log of the format
(nettrail.format.LOGS) is a probe; they start in the logs' order (a probe
may use one started before it: sessions reads socket owners from
bandwidth's counters). A new probe is a new module: docs/development.md
lists the files it touches. The window and check loop over PROBE_CLASSES."""

import importlib
import pkgutil

from nettrail.capture.loader import Probe
from nettrail.format import PROBES


def _probe_classes() -> tuple[type[Probe], ...]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    by_name = {cls.name: cls for cls in Probe.__subclasses__() if cls.name in PROBES}
    return tuple(by_name[name] for name in PROBES if name in by_name)


PROBE_CLASSES = _probe_classes()
