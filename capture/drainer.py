"""The ring buffers' drainer: a thread of its own that only copies what the
probes submitted out of their ring buffers into a bounded queue, so that
draining never waits for decoding, writing or an interval's pass (the
window's thread takes the queue and does those).

The rings are read in place, through their memory mapped as libbpf maps
them (a consumer page, the producer page, the data mapped twice so a record
never wraps), a pass of bulk copies per ring: no call back into Python per
event (each of which would wait for the window's thread to let go of the
GIL). x86's loads and stores keep their order, which the ring's protocol
needs (nettrail's BPF objects are built for x86)."""

from __future__ import annotations

import collections
import mmap
import struct
import threading
from collections.abc import Callable

from nettrail.capture.libbpf import map_max_entries

DRAIN_MS = 50
MAX_QUEUED_BYTES = 16 << 20  # past this, the rings keep their events (and count what they drop)
READ_BYTES = 1 << 20  # at most per batch: the window's thread decodes a batch at once
BUSY_BIT, DISCARD_BIT = 1 << 31, 1 << 30  # a record's header (bpf_ringbuf_hdr.len)
HEADER_BYTES = 8
U32 = struct.Struct("<I")


class Ring:
    """One BPF ring buffer, read in place."""

    def __init__(self, map_fd: int, on_batch: Callable[[bytes], None]) -> None:
        self.on_batch = on_batch
        size, page = map_max_entries(map_fd), mmap.PAGESIZE
        self.mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        self._data = memoryview(self._producer)[page:]
        # the positions as 8-byte words, each read and written in one access:
        # struct packs byte by byte, and the kernel, reading a consumer
        # position half written, would see the ring full and drop an event
        self._consumer_pos = memoryview(self._consumer)[:8].cast("Q")
        self._producer_pos = memoryview(self._producer)[:8].cast("Q")

    def read(self, max_bytes: int = READ_BYTES) -> bytes:
        """The records submitted so far (about `max_bytes` of them at most),
        concatenated; their space given back."""
        start = pos = self._consumer_pos[0]
        end = min(self._producer_pos[0], start + max_bytes)
        data, mask, parts = self._data, self.mask, []
        while pos < end:
            offset = pos & mask
            length = U32.unpack_from(data, offset)[0]
            if length & BUSY_BIT:
                break  # reserved, not yet submitted: records after it wait too
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            if not length & DISCARD_BIT:
                parts.append(data[offset + HEADER_BYTES:offset + HEADER_BYTES + size])
            pos += (size + HEADER_BYTES + 7) & ~7
        blob = b"".join(parts)  # copied out before the space is given back
        if pos != start:
            self._consumer_pos[0] = pos
        return blob

    def close(self) -> None:
        self._consumer_pos.release()
        self._producer_pos.release()
        self._data.release()
        self._producer.close()
        self._consumer.close()


class Drainer:
    """The probes' ring buffers, drained by a thread of their own into a queue
    the window's thread hands over (decodes and writes) when it can; the
    queue is bounded (MAX_QUEUED_BYTES): past that, the rings keep their
    events, and what they cannot keep is counted where it is dropped."""

    def __init__(self) -> None:
        self._rings: list[Ring] = []
        self._queue: collections.deque[tuple[Callable[[bytes], None], bytes]] = (
            collections.deque())
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, map_fd: int, on_batch: Callable[[bytes], None]) -> None:
        self._rings.append(Ring(map_fd, on_batch))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nettrail-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_MS / 1000):
            self._pull(bounded=True)

    def _pull(self, bounded: bool) -> None:
        with self._lock:
            for ring in self._rings:
                while (not bounded or self._queued_bytes < MAX_QUEUED_BYTES) and (
                        blob := ring.read()):
                    self._queue.append((ring.on_batch, blob))
                    self._queued_bytes += len(blob)

    def hand_over(self) -> None:
        """Decode and write (the consumers' callbacks) what was drained so far,
        in the caller's thread, a batch at a time (the thread goes on
        draining meanwhile)."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                on_batch, blob = self._queue.popleft()
                self._queued_bytes -= len(blob)
            on_batch(blob)

    def wait(self, timeout_ms: int) -> None:
        """Sleep (the thread drains meanwhile), then hand over what arrived."""
        self._stop.wait(timeout_ms / 1000)
        self.hand_over()

    def drain(self) -> None:
        """Everything submitted so far, handed over now."""
        self.hand_over()
        self._pull(bounded=False)
        self.hand_over()

    def free(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._thread = None
        for ring in self._rings:
            ring.close()
        self._rings = []
