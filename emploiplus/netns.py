"""Several hosts on one machine, for tests: Linux network namespaces joined by bridges.

    with netns.Lab() as lab:
        front, back = lab.network("front"), lab.network("back")
        db = lab.host("db", back=2)                      # db.address("back") == "10.x.y.2"
        web = lab.host("web1", front=11, back=11)
        proc = web.popen([sys.executable, "-m", "emploiplus.processes", "web"], env=…)
        web.unplug("back")                               # its back cable out: nothing gets through
        web.plug("back")

Each network is a bridge in the root namespace with a free 10.x.y.0/24; the root namespace
(the test process: clients, observers, local stand-ins such as a fake OneSignal) has `.1` on
every network. Each host is a network namespace with one veth pair per network it is on
(`front`, `back` inside it), loopback up, no default route: a host reaches only the networks it
is on, and the root namespace does not forward between them (the kernel default).

`unplug(network)` sets the bridge side of the host's veth down, as if its cable were pulled at
the switch: the host's interface loses carrier, what it sends there is dropped, nothing comes
in; its other networks are untouched. Open TCP connections are not reset: they stall, and
resume by retransmission once `plug` puts the cable back — a partition, not a restart.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip` (iproute2); `unavailable()` says why
not, for a test to skip with. Names carry the creating process's id (`ep<pid>…`), so
concurrent runs do not collide; `close()` (or leaving the `with`) removes every namespace,
veth and bridge created, after the caller stopped the processes it started in them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field

IP = "ip"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can (checked by creating
    and deleting one)."""
    if shutil.which(IP) is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return f"network namespaces need root (`ip netns add` as uid 0); running as uid {os.geteuid()}"
    name = f"ep{os.getpid()}-probe"
    result = _ip("netns", "add", name, check=False)
    if result.returncode != 0:
        return f"`ip netns add` is not permitted here: {result.stderr.strip() or result.returncode}"
    _ip("netns", "del", name, check=False)
    result = _ip("link", "add", f"ep{os.getpid()}p", "type", "bridge", check=False)
    if result.returncode != 0:
        return f"`ip link add … type bridge` is not permitted here: {result.stderr.strip() or result.returncode}"
    _ip("link", "del", f"ep{os.getpid()}p", check=False)
    return None


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for args in (("-4", "-j", "route", "show", "table", "all"), ("-4", "-j", "addr")):
        with contextlib.suppress(subprocess.CalledProcessError, json.JSONDecodeError):
            for entry in json.loads(_ip(*args).stdout or "[]"):
                for dst in [entry.get("dst")] + [
                    f"{a['local']}/{a.get('prefixlen', 32)}" for a in entry.get("addr_info", [])
                ]:
                    if dst and dst != "default" and "." in dst:
                        with contextlib.suppress(ValueError):
                            used.append(ipaddress.ip_network(dst, strict=False))
    return used


@dataclass
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network

    def address(self, n: int) -> str:
        return str(self.subnet.network_address + n)


@dataclass
class Host:
    name: str
    netns: str
    lab: Lab
    addresses: dict[str, str] = field(default_factory=dict)  # network name → address
    cables: dict[str, str] = field(default_factory=dict)  # network name → bridge-side veth

    def address(self, network: str) -> str:
        return self.addresses[network]

    def argv(self, command: list[str]) -> list[str]:
        """`command` run in this host's namespace."""
        return [IP, "netns", "exec", self.netns, *command]

    def popen(self, command: list[str], **kwargs) -> subprocess.Popen:
        """A process in this host (its own session, so `testing.stop_process` stops its group)."""
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(self.argv(command), **kwargs)

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.argv(command), **kwargs)

    def unplug(self, network: str) -> None:
        _ip("link", "set", self.cables[network], "down")

    def plug(self, network: str) -> None:
        _ip("link", "set", self.cables[network], "up")


class Lab:
    """Networks and hosts created by this process; removed by `close()`."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"ep{os.getpid()}"
        self.networks: dict[str, Network] = {}
        self.hosts: dict[str, Host] = {}
        self._links: list[str] = []  # root-namespace links to delete, in creation order
        self._namespaces: list[str] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def network(self, name: str) -> Network:
        """A bridge with a free 10.x.y.0/24 subnet; the root namespace gets `.1` on it."""
        used = _used_networks() + [n.subnet for n in self.networks.values()]
        rng = random.Random(f"{self.tag}-{name}")
        for _ in range(1000):
            subnet = ipaddress.ip_network(f"10.{rng.randint(100, 250)}.{rng.randint(0, 255)}.0/24")
            if not any(subnet.overlaps(u) for u in used):
                break
        else:  # pragma: no cover - a machine with a thousand 10.x routes
            raise RuntimeError("no free 10.x.y.0/24 subnet for a test network")
        bridge = f"{self.tag}n{len(self.networks)}"  # ≤ 15 characters (IFNAMSIZ)
        _ip("link", "add", bridge, "type", "bridge")
        self._links.append(bridge)
        network = Network(name, bridge, subnet)
        _ip("addr", "add", f"{network.address(1)}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        self.networks[name] = network
        return network

    def host(self, name: str, **networks: int) -> Host:
        """A namespace `<tag>-<name>` on the given networks: `back=2` gives it `.2` on `back`."""
        netns = f"{self.tag}-{name}"
        _ip("netns", "add", netns)
        self._namespaces.append(netns)
        host = Host(name, netns, self)
        _ip("-n", netns, "link", "set", "lo", "up")
        for network_name, n in networks.items():
            network = self.networks[network_name]
            cable = f"{self.tag}h{len(self.hosts)}{network.bridge[-1]}"
            _ip("link", "add", cable, "type", "veth", "peer", "name", network_name, "netns", netns)
            self._links.append(cable)
            _ip("link", "set", cable, "master", network.bridge)
            _ip("link", "set", cable, "up")
            address = network.address(n)
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", network_name)
            _ip("-n", netns, "link", "set", network_name, "up")
            host.addresses[network_name] = address
            host.cables[network_name] = cable
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for netns in reversed(self._namespaces):
            _ip("netns", "del", netns, check=False)
        for link in reversed(self._links):
            _ip("link", "del", link, check=False)  # a veth's peer goes with it
        self._namespaces.clear()
        self._links.clear()
