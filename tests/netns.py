"""Hosts of their own for tests: Linux network namespaces joined by a private switch (a bridge in
a namespace of its own, a veth link to each host), so processes started in a host see only its
interface and address, as on another machine. Nothing is added to this machine's own network
namespace: every link and address lives inside the test's namespaces and goes with them. Root
only; a test skips where namespaces cannot be made."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Self

import pytest

PREFIX_LENGTH = 24  # every host on one /24


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def skip_unless_namespaces_can_be_made() -> None:
    """Skip the calling test, with the reason, where this machine cannot make a namespace."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip` to make network namespaces")
    if os.geteuid() != 0:
        pytest.skip("needs root to make network namespaces")
    probe = f"gsprobe-{uuid.uuid4().hex[:8]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here ({made.stderr.strip() or made.returncode})")
    _ip("netns", "del", probe, check=False)


@dataclass(frozen=True)
class Host:
    label: str  # "head", "worker": what the test calls it
    name: str  # its namespace
    address: str


class Network:
    """A switch and the hosts on it. Use as a context manager: leaving it kills every process
    in every namespace and deletes the namespaces, and their links with them."""

    def __init__(self, subnet: str = "10.213.0"):
        self.tag = uuid.uuid4().hex[:6]  # namespaces of several runs never collide
        self.subnet = subnet
        self.switch = f"gs-{self.tag}-switch"
        self.hosts: list[Host] = []

    def __enter__(self) -> Self:
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
        except RuntimeError as error:
            self.close()
            pytest.skip(f"cannot make the test network: {error}")
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def add_host(self, label: str) -> Host:
        """A namespace with loopback and one interface, eth0, at the next address on the switch."""
        host = Host(label, f"gs-{self.tag}-{label}", f"{self.subnet}.{len(self.hosts) + 1}")
        self.hosts.append(host)
        port = f"p{len(self.hosts)}"
        _ip("netns", "add", host.name)
        try:
            # Made in the switch's namespace with its peer born in the host's: the link never
            # appears in this machine's own namespace, even for a moment.
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        except RuntimeError as error:  # a kernel without veth
            pytest.skip(f"cannot make the test network: {error}")
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.name, "addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", "eth0")
        _ip("-n", host.name, "link", "set", "eth0", "up")
        _ip("-n", host.name, "link", "set", "lo", "up")
        return host

    def command(self, host: Host, argv: list[str]) -> list[str]:
        """`argv` to run inside `host`."""
        return ["ip", "netns", "exec", host.name, *argv]

    def pids(self, namespace: str) -> list[int]:
        listed = _ip("netns", "pids", namespace, check=False)
        return [int(pid) for pid in listed.stdout.split()]

    def kill_all(self, namespace: str, timeout: float = 10.0) -> int:
        """SIGKILL every process in the namespace, as a machine losing power; the count killed."""
        killed = set()
        deadline = time.time() + timeout
        while time.time() < deadline:
            pids = self.pids(namespace)
            if not pids:
                break
            for pid in pids:  # a dying parent may fork again: repeat until the namespace is empty
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return len(killed)

    def close(self) -> None:
        for namespace in [host.name for host in self.hosts] + [self.switch]:
            self.kill_all(namespace)
            _ip("netns", "del", namespace, check=False)  # its links go with it
        self.hosts.clear()
