"""Cells claimed by this process: the claim, its owner, and the heartbeat that keeps it.

See the contract in :mod:`noisereg.study.store` ("A heartbeat that cannot beat", "Dead claimants on
this machine"): a claim records its owner (machine, process id, the process's start time), so that a
claimant that is gone from this machine is recognized at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from noisereg.study.store.connection import Retrying, first_line

__all__ = ["OWNER", "CellLost", "Claim", "Heartbeat", "claimant", "gone", "machine"]

_log = logging.getLogger("noisereg.study")

OWNER = "noisereg:owner"
"""Trial system attribute: the claimant of a RUNNING trial, ``{"machine", "pid", "started"}``."""


class CellLost(RuntimeError):
    """This process no longer holds a claimed cell: its heartbeat lapsed, or another process failed it."""


def machine() -> str:
    """This machine and process namespace: host name, plus (on Linux) boot id and pid namespace."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def started(pid: int) -> str | None:
    """Process ``pid``'s start time in clock ticks since boot (Linux), "?" without /proc, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").is_file():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]


def claimant() -> dict[str, Any]:
    """This process as a claimant: ``{"machine", "pid", "started"}`` (recorded as :data:`OWNER`)."""
    return {"machine": machine(), "pid": os.getpid(), "started": started(os.getpid())}


def gone(owner: Any) -> bool:
    """Whether the claimant ``owner`` ran on this machine and no longer exists (pid gone or reused)."""
    if not isinstance(owner, dict) or owner.get("machine") != machine() or not isinstance(owner.get("pid"), int):
        return False
    now = started(owner["pid"])
    return now is None or (now != "?" and now != owner.get("started"))


class Claim:
    """A cell this process is running: its trial id and key."""

    def __init__(self, trial_id: int, number: int, cell: str) -> None:
        self.trial_id, self.number, self.cell = trial_id, number, cell

    def __repr__(self) -> str:
        return f"Claim(trial={self.number}, cell={self.cell!r})"


class Heartbeat:
    """The heartbeat of one batch of claims (see :meth:`Store.heartbeat`); ``lost`` says why they were
    lost, or is None while they are held."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        retrying: Retrying,
        claims: Sequence[Claim],
        *,
        interval: int,
        grace_period: int,
    ) -> None:
        self.storage, self.retrying, self.claims = storage, retrying, tuple(claims)
        self.interval, self.grace_period = interval, grace_period
        self.stop = threading.Event()
        self.last = time.monotonic()  # the claim recorded the first heartbeat
        self.lost: str | None = None

    def run(self) -> None:
        """Beat at once, then every interval until ``stop`` is set; never raise (a failure is logged,
        and the beat tried again at the next interval)."""
        failing = False
        cells = ", ".join(c.cell for c in self.claims)
        while self.lost is None:
            silent = time.monotonic() - self.last
            if failing and silent > self.grace_period:
                # The storage has failed every beat for the grace period: lost, whenever the training
                # thread next looks. Another process may take these cells for dead at any moment, so a
                # beat that gets through now could keep alive a trial that is being retried elsewhere;
                # stop beating, and the reaper retries it exactly once. (A beat that is merely late, on
                # a busy machine, is recorded: the trial's state, read with it, says if it was taken.)
                self.lost = f"no heartbeat could be recorded for {silent:.0f} s (grace period {self.grace_period} s)"
                return
            try:
                with self.retrying.once():
                    for c in self.claims:
                        self.storage.record_heartbeat(c.trial_id)
                    states = {c.cell: self.storage.get_trial(c.trial_id).state for c in self.claims}
            except Exception as exc:  # noqa: BLE001 - a heartbeat must not die unseen: log, try again
                if not failing:
                    _log.warning(
                        "heartbeat of cell(s) %s could not be recorded (%s); trying again every %d s",
                        cells,
                        first_line(exc),
                        self.interval,
                    )
                failing = True
            else:
                if failing:
                    _log.warning(
                        "heartbeat of cell(s) %s recorded again after %.0f s", cells, time.monotonic() - self.last
                    )
                failing, self.last = False, time.monotonic()
                taken = sorted(k for k, state in states.items() if state != TrialState.RUNNING)
                if taken:
                    self.lost = f"marked {states[taken[0]].name} by another process (its heartbeat had lapsed)"
            if self.stop.wait(self.interval):
                return

    def check(self) -> None:
        """Raise :class:`CellLost` if the claims are lost: no heartbeat for ``grace_period`` seconds
        (another process may take them for dead at any moment), or failed by another process."""
        silent = time.monotonic() - self.last
        if self.lost is None and silent > self.grace_period:
            self.lost = f"no heartbeat could be recorded for {silent:.0f} s (grace period {self.grace_period} s)"
        if self.lost is not None:
            raise CellLost(f"lost cell(s) {', '.join(c.cell for c in self.claims)}: {self.lost}")
