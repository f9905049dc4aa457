"""Load benchmark: 2 uvicorn workers on a fresh PostgreSQL database, 50 users, mixed traffic.

    PASSAGE_ENVIRONMENT=test .venv/bin/python bench/load.py [--duration 60] [--users 50]

Starts `passage serve --workers 2` on a loopback port against a new database (migrated as
the owner, served as the least-privilege app role), registers fictional cases through the
real service (sealed fields, blind indexes, audit), then runs closed-loop users: 70 % case
reads (GET /api/v1/cases/{id}: decrypt + audit append), 20 % lists (no sealed field, no
audit: the unencrypted baseline), 10 % workflow transitions (row lock, audit append).
A short /healthz phase at the same concurrency gives the no-database floor.

Prints throughput and p50/p95/p99 per route, the read/list ratio (the cost of
encryption and audit), and verdicts against the targets (p95 read < 100 ms, transition
< 200 ms, 0 errors). It never fails: targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.operations import liveserver

TARGETS = {"read": 0.100, "transition": 0.200}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class Stats:
    def __init__(self, measure_from: float = 0.0) -> None:
        # Samples that start before `measure_from` (warm-up: first requests to each worker,
        # cold caches, the 50 users starting at the same instant) are not counted.
        self.measure_from = measure_from
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.lock = threading.Lock()

    def add(self, route: str, seconds: float, status: int | str, started: float = 0.0) -> None:
        if started and started < self.measure_from:
            return
        with self.lock:
            ok = isinstance(status, int) and status < 400
            if ok:
                self.latency[route].append(seconds)
            else:
                self.errors[route][str(status)] += 1


def user_loop(
    client: httpx.Client,
    username: str,
    cases: list[str],
    deadline: float,
    think: float,
    stats: Stats,
) -> None:
    rng = random.Random(username)
    state = {case: (1, "detected") for case in cases}
    try:
        while time.monotonic() < deadline:
            pick = rng.random()
            case = rng.choice(cases)
            start = time.monotonic()
            try:
                if pick < 0.70:
                    route = "read"
                    status: int | str = client.get(f"/api/v1/cases/{case}").status_code
                elif pick < 0.90:
                    route = "list"
                    status = client.get("/api/v1/cases", params={"limit": 25}).status_code
                else:
                    route = "transition"
                    version, stage = state[case]
                    event = "contact_restored" if stage == "lost_contact" else "report_lost_contact"
                    response = client.post(
                        f"/api/v1/cases/{case}/transitions",
                        json={"event": event},
                        headers={"If-Match": f'"{version}"'},
                    )
                    status = response.status_code
                    if status == 200:
                        body = response.json()
                        state[case] = (body["version"], body["stage"])
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            stats.add(route, time.monotonic() - start, status, started=start)
            if think:
                time.sleep(rng.uniform(0, 2 * think))
    finally:
        client.close()


def healthz_loop(base_url: str, deadline: float, stats: Stats) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                status: int | str = client.get("/healthz").status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            stats.add("healthz", time.monotonic() - start, status)


def report(stats: Stats, seconds: float, baseline_seconds: float) -> None:
    print(
        f"\n{'route':<11}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors"
    )
    for route in ("read", "list", "transition", "healthz"):
        values = stats.latency.get(route, [])
        errors = dict(stats.errors.get(route, {}))
        span = baseline_seconds if route == "healthz" else seconds
        print(
            f"{route:<11}{len(values):>9}{len(values) / span:>8.1f}"
            f"{percentile(values, 50) * 1000:>9.1f}{percentile(values, 95) * 1000:>9.1f}"
            f"{percentile(values, 99) * 1000:>9.1f}  {errors or 0}"
        )
    total = sum(len(stats.latency[r]) for r in ("read", "list", "transition"))
    print(f"\nthroughput (mixed): {total / seconds:.1f} req/s")
    read, listing = stats.latency.get("read", []), stats.latency.get("list", [])
    if read and listing:
        print(
            "cost of encryption + audit (read vs unencrypted list): "
            f"p50 x{statistics.median(read) / statistics.median(listing):.2f}, "
            f"p95 x{percentile(read, 95) / percentile(listing, 95):.2f}"
        )
    print("\nverdicts (targets, not assertions):")
    for route, target in TARGETS.items():
        p95 = percentile(stats.latency.get(route, []), 95)
        verdict = "PASS" if p95 < target else "MISS"
        print(f"  {verdict}  p95 {route} {p95 * 1000:.1f} ms (target < {target * 1000:.0f} ms)")
    errors = sum(sum(e.values()) for r, e in stats.errors.items() if r != "healthz")
    print(f"  {'PASS' if errors == 0 else 'MISS'}  errors {errors} (target 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cases-per-user", type=int, default=4)
    parser.add_argument(
        "--think", type=float, default=0.25, help="mean pause between a user's requests (s)"
    )
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of /healthz")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load not counted at the start"
    )
    parser.add_argument(
        "--admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL URL allowed to create and drop a database",
    )
    parser.add_argument("--rate-limits", action="store_true", help="keep the app's rate limits on")
    args = parser.parse_args()

    name = f"passage_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="passage-bench-"))
    print(f"database {name}, {args.workers} workers, {args.users} users, {args.duration:.0f} s")
    _, app_url = liveserver.create_database(args.admin_url, name)
    try:
        keys = liveserver.make_keys(work / "keys")
        start = time.monotonic()
        seeded = liveserver.seed(
            app_url, keys, users=args.users, cases_per_user=args.cases_per_user
        )
        print(f"seeded {len(seeded.case_ids)} cases in {time.monotonic() - start:.1f} s")
        extra = {} if args.rate_limits else {"PASSAGE_RATE_LIMIT_ENABLED": "false"}
        with liveserver.running_server(
            app_url, keys, workers=args.workers, log_dir=work, extra_env=extra
        ) as server:
            stats = Stats()
            # Sign everyone in first (Argon2id is deliberately slow): not part of the figures.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                clients = list(
                    pool.map(
                        lambda pair: liveserver.login(
                            server.base_url,
                            pair[1],
                            address=f"10.0.{pair[0] // 250}.{pair[0] % 250 + 1}",
                            timeout=30,
                        ),
                        enumerate(seeded.usernames),
                    )
                )
            stats.measure_from = time.monotonic() + args.warmup
            deadline = stats.measure_from + args.duration
            threads = [
                threading.Thread(
                    target=user_loop,
                    args=(
                        clients[i],
                        username,
                        [str(c) for c in seeded.cases_by_user[username]],
                        deadline,
                        args.think,
                        stats,
                    ),
                )
                for i, username in enumerate(seeded.usernames)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.monotonic() - stats.measure_from  # the counted window only
            baseline_deadline = time.monotonic() + args.baseline
            probes = [
                threading.Thread(
                    target=healthz_loop, args=(server.base_url, baseline_deadline, stats)
                )
                for _ in range(args.users)
            ]
            for t in probes:
                t.start()
            for t in probes:
                t.join()
        report(stats, seconds, args.baseline)
    finally:
        liveserver.drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
