"""Drive wrk over a path list (bench/walk.lua) and turn its report into one result row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import cpu

BENCH = Path(__file__).resolve().parent
WALK = BENCH / "walk.lua"


def walk(base: str, pathfile: Path, concurrency: int, mode: str, seconds: float, log: Path,
         server_group: int | None = None, gzip: bool = False) -> dict:
    """mode 'once': each path once (stops early when done; `seconds` is a cap); 'loop': for `seconds`.
    gzip: requests say `Accept-Encoding: gzip` (bytes per tile are then the gzipped bytes).
    With the server's process group, the result's `cpu` says where the walk's CPU went (bench.cpu)."""
    threads = 1 if concurrency == 1 else 2  # 2 cores: one wrk thread per core at most
    with tempfile.TemporaryDirectory(prefix="walk-") as tmp:
        marks = Path(tmp)
        result = marks / "result.json"
        env = {**os.environ, "WALK_RESULT": str(result), "WALK_MARKS": str(marks) if mode == "once" else ""}
        if mode != "once":
            env.pop("WALK_MARKS")
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--timeout", "60s",
               "-s", str(WALK), base, "--", str(pathfile), str(threads), mode] + (["gzip"] if gzip else [])
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            meter = cpu.Meter(server_group)
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            if mode == "once":
                # wrk's main thread sleeps the whole -d; once every thread has walked its share, stop it
                while proc.poll() is None:
                    if len(list(marks.glob("end.*"))) == threads:
                        proc.send_signal(signal.SIGINT)
                        break
                    time.sleep(0.02)
            proc.wait(seconds + 120)
            used = meter.stop()
        if not result.exists():
            raise RuntimeError(f"wrk wrote no result; see {log}")
        raw = json.loads(result.read_text())
        starts = [int(p.read_text()) for p in marks.glob("start.*")]
        ends = [int(p.read_text()) for p in marks.glob("end.*")]
    if mode == "once" and len(ends) == threads and starts:
        duration = (max(ends) - min(starts)) / 1e9
        complete = True
    else:
        duration = raw["duration_us"] / 1e6
        complete = False
    n = raw["responses"]
    sock = raw["socket_errors"]
    lat = raw["latency_us"]
    return {
        "tiles": n,
        "complete": complete,
        "seconds": round(duration, 3),
        "tiles_s": n / duration if duration > 0 else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "bytes_per_tile": raw["body_bytes"] / n if n else 0.0,
        "errors": raw["http_errors"] + sock["connect"] + sock["read"] + sock["write"] + sock["timeout"],
        "empty": raw["empty"],
        "wrk": raw,
        "cpu": used,
        "cpu_ms_per_tile": cpu.per_tile_ms(used, n),
    }
