"""Packets the kernel dropped, in the report (root-free): the reason that
dropped most beyond ordinary life stands out with where, a lossy path
carries the drops on it, and the table lists each (namespace, reason,
endpoints), from records in the shape the drops probe writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.format import LOGS
from nettrail.report.aggregate import aggregate
from nettrail.report.build import write_report
from nettrail.report.reader import open_capture
from nettrail.report.render import say

FIXTURE = Path(__file__).parent / "data" / "capture_v2"
TS = 1767323049.0
DROP = {"kind": "drop", "ts": TS, "interval": 1, "interval_s": 1.0, "host": "fixture",
        "netns": 4026531840, "reason": "NETFILTER_DROP", "family": "ipv4", "protocol": "tcp",
        "saddr": "10.0.0.7", "sport": 41000, "daddr": "10.0.0.5", "dport": 9100,
        "dropped_packets": 5, "skb_bytes": 7240, "endpoints_kept": True}


def capture(tmp_path: Path, drops: list[dict], lossy: bool = False) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(FIXTURE, target)
    target.chmod(0o700)
    (target / LOGS["drops"].file).write_text("".join(json.dumps(d) + "\n" for d in drops))
    if lossy:  # a client that resent 30 of its 400 segments to 10.0.0.5:9100
        bandwidth = target / LOGS["bandwidth"].file
        row = json.loads(bandwidth.read_text().splitlines()[0])
        with bandwidth.open("a") as f:
            f.write(json.dumps({**row, "pid": 902, "comm": "api", "raddr": "10.0.0.5",
                                "rport": 9100, "laddr": "10.0.0.7", "lport": 41000,
                                "side": "client", "sent_segs": 400, "retrans_segs": 30}) + "\n")
    return target


def test_the_reason_that_dropped_most_stands_out_with_where(tmp_path: Path) -> None:
    drops = [DROP, {**DROP, "interval": 2, "dropped_packets": 2, "skb_bytes": 2896},
             {**DROP, "reason": "TCP_OLD_DATA", "dropped_packets": 1, "skb_bytes": 52},
             {**DROP, "reason": "NO_SOCKET", "dport": 81, "dropped_packets": 40}]
    data = aggregate([open_capture(capture(tmp_path, drops))])
    (found,) = [f for f in data.findings if f.cause == "packet_drops"]
    # NO_SOCKET dropped more, but a closed port is ordinary: the sessions say refused
    assert say(found) == ("the kernel dropped 7 packets for NETFILTER_DROP (most: "
                          "10.0.0.7:41000 → 10.0.0.5:9100 ×7, netns 4026531840); also "
                          "TCP_OLD_DATA ×1 (48 dropped in all)")
    assert (found.table, found.filter, found.kind) == ("drops", "NETFILTER_DROP", "loss")
    assert [(r.reason, r.packets, r.skb_bytes) for r in data.drops.rows] == [
        ("NO_SOCKET", 40, 7240), ("NETFILTER_DROP", 7, 10136), ("TCP_OLD_DATA", 1, 52)]


def test_ordinary_drops_alone_are_listed_not_a_finding(tmp_path: Path) -> None:
    drops = [{**DROP, "reason": "NO_SOCKET"}, {**DROP, "reason": "NOT_SPECIFIED",
                                               "endpoints_kept": False, "saddr": None,
                                               "daddr": None, "sport": None, "dport": None}]
    data = aggregate([open_capture(capture(tmp_path, drops))])
    assert "packet_drops" not in {f.cause for f in data.findings}
    assert data.drops.by_reason == {"NO_SOCKET": 5, "NOT_SPECIFIED": 5}
    assert data.drops.rows[1].source is None


def test_a_lossy_path_carries_the_drops_on_it(tmp_path: Path) -> None:
    drops = [DROP, {**DROP, "reason": "TCP_OFOMERGE", "dropped_packets": 2},
             {**DROP, "dport": 9101, "dropped_packets": 50}]  # another path
    data = aggregate([open_capture(capture(tmp_path, drops, lossy=True))])
    (lossy,) = [f for f in data.findings if f.cause == "lossy_path"]
    assert lossy.values["drops"] == {"NETFILTER_DROP": 5, "TCP_OFOMERGE": 2}
    assert "this host dropped on it NETFILTER_DROP ×5, TCP_OFOMERGE ×2" in say(lossy)


def test_the_page_lists_drops_and_escapes_their_text(tmp_path: Path) -> None:
    hostile = "<script>x</script>\x1b[2J"
    target = capture(tmp_path, [DROP, {**DROP, "reason": hostile}])
    page = write_report(target).read_text()
    table = page[page.index('id="drops"'):page.index('id="dns"')]
    assert "NETFILTER_DROP" in table and "10.0.0.7:41000" in table
    assert "<script>x" not in page and "\x1b" not in page
