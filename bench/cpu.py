"""Where a walk's CPU went: the server under test, PostgreSQL, the load tool, the bench itself.

Tiles per second on a 2-CPU machine are a question of CPU per tile: the load tool, the server and
PostgreSQL share the two CPUs, so a ratio to the raw bound is set by what each spends per tile.
`Meter` reads every process's CPU time from /proc before and after a walk and sorts it into groups:
the server (its process group: uvicorn's master and workers), PostgreSQL (every `postgres`
process: the backends of the walk's connections, and the background processes), the load tool
(wrk, a child of this process, counted from its resource usage when it has exited), the bench's own
process (the raw bound's client threads) and whatever else ran on the machine. A process's time
includes that of its children that ended and were waited for (a backend whose client disconnected is
counted in the postmaster's), so a command's backend is counted after the command has exited.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("server", "PostgreSQL", "load tool", "bench", "other")


def processes() -> dict[int, tuple[str, int, float, float]]:
    """pid: (command name, process group, CPU seconds in user and kernel mode: its own, and its
    waited-for children's)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:  # gone since the listing
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ')'
        close = raw.rfind(b")")
        comm = raw[raw.find(b"(") + 1:close].decode(errors="replace")
        fields = raw[close + 2:].split()
        # proc(5), /proc/pid/stat: pgrp is field 5, utime 14, stime 15, cutime 16, cstime 17; fields[0]
        # here is field 3 (state)
        own, children = (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK
        out[int(name)] = (comm, int(fields[2]), own, children)
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    def __init__(self, server_group: int | None = None):
        self.server_group = server_group
        self.me = os.getpid()
        self.started = time.perf_counter()
        self.before = processes()
        self.children = _children_cpu()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since the meter started, and `wall` (seconds) and `cpus`."""
        after = processes()
        used: dict[str, float] = defaultdict(float)
        others: dict[str, float] = defaultdict(float)  # by command name: what "other" was
        for pid, (comm, group, own, children) in after.items():
            old = self.before.get(pid)
            # a pid seen before under another name was reused: all of its time is new
            if old is not None and old[0] == comm:
                own, children = own - old[2], children - old[3]
            # this process's waited children are the load tool, counted below from getrusage
            spent = own + (children if pid != self.me else 0.0)
            if spent > 0:
                kind = self._group(pid, comm, group)
                used[kind] += spent
                if kind == "other":
                    others[comm] += spent
        used["load tool"] += _children_cpu() - self.children
        top = dict(sorted(((c, round(v, 3)) for c, v in others.items()), key=lambda cv: -cv[1])[:5])
        return {**{g: round(used.get(g, 0.0), 3) for g in GROUPS},
                "wall": round(time.perf_counter() - self.started, 3), "cpus": os.cpu_count() or 1, "other_top": top}

    def _group(self, pid: int, comm: str, group: int) -> str:
        if pid == self.me:
            return "bench"
        if self.server_group is not None and group == self.server_group:
            return "server"
        if comm == "postgres":
            return "PostgreSQL"
        if comm == "wrk":
            return "load tool"
        return "other"


def per_tile_ms(cpu: dict, tiles: int) -> dict[str, float]:
    """Each group's CPU per tile in ms, and `idle`: what the CPUs did not spend in the walk."""
    if not tiles:
        return {}
    out = {g: round(cpu[g] * 1000 / tiles, 3) for g in GROUPS}
    out["idle"] = round(max(0.0, cpu["wall"] * cpu["cpus"] - sum(cpu[g] for g in GROUPS)) * 1000 / tiles, 3)
    return out
