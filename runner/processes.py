"""Ending a family of processes at once (psutil.Process objects), and knowing when they are gone."""

from __future__ import annotations

import time


def kill_and_wait(family: list, seconds: float = 10) -> None:
    """SIGKILL every process in `family`, then wait until each is gone or a zombie: a zombie is
    dead, and one whose parent died with it is init's to reap, which may take its time."""
    import psutil

    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + seconds
    for member in family:
        while is_alive(member) and time.monotonic() < deadline:
            time.sleep(0.01)


def is_alive(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
