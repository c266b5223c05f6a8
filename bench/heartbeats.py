"""Benchmark: the heartbeat monitor (RabbitMQ -> HeartbeatMonitor -> Redis), issue 5.

Starts a private redis-server and rabbitmq-server (tests/support/messaging_servers.py) and measures:

1. throughput, backlog: N heartbeats wait in a named queue bound to ``bannou.service-heartbeat``;
   a monitor starts on it; heartbeats/s from the monitor's start until all N are stored in Redis
   (pure monitor speed: delivery, parsing, pipelined Redis writes, batched acks). Run twice: few
   app ids (100, the realistic case, batches collapse per app id) and all-distinct app ids (worst
   case: one Redis key per heartbeat).
2. throughput, live: a separate publisher process publishes N heartbeats as fast as it can while
   the monitor consumes; heartbeats/s from the first to the last one stored (bounded by the
   publisher when it is the slower side; its own rate is printed too).
3. delay: a HeartbeatPublisher turns from degraded to healthy; time until the monitor has stored
   the healthy heartbeat (``wait_for``) and until a ``heartbeat_healthy`` probe polling Redis
   every 2 ms sees it. Median, p95 and max over the rounds.

Goals: >= 5,000 heartbeats/s on one core (the monitor is one thread of this process), delay
<= 100 ms.

    .venv/bin/python bench/heartbeats.py [--count 50000] [--rounds 50] [--json results.json]

Exit status: 0 all goals met, 1 a goal missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

import pika

from pytest_bannou.messaging.contract import EXCHANGE, HEARTBEAT_TOPIC, heartbeat_event
from pytest_bannou.messaging.heartbeats import HeartbeatMonitor, connect_redis, heartbeat_healthy
from pytest_bannou.reference.messaging import HeartbeatPublisher
from tests.support.messaging_servers import start_rabbitmq, start_redis

GOAL_RATE = 5000.0
GOAL_DELAY_MS = 100.0


TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of one process group (a server)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state ppid pgrp ...
            total += int(fields[11]) + int(fields[12])  # utime stime
    return total / TICKS


def bodies(count: int, apps: int) -> list[bytes]:
    """Realistic heartbeats: 3 services, capacity, distinct event ids."""
    out = []
    for i in range(count):
        ev = heartbeat_event(
            f"node-{i % apps}",
            "healthy",
            ["auth", "account", "connect"],
            capacity={"maxConnections": 1000, "currentConnections": i % 1000, "cpuUsage": 0.3},
        )
        out.append(json.dumps(ev, separators=(",", ":")).encode())
    return out


def publish(url: str, payloads: list[bytes], queue: str | None = None) -> float:
    """Publish everything; returns the publish rate (messages/s)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    if queue:
        ch.queue_declare(queue)
        ch.queue_bind(queue, EXCHANGE, routing_key=HEARTBEAT_TOPIC)
    t0 = time.perf_counter()
    for body in payloads:
        ch.basic_publish(EXCHANGE, HEARTBEAT_TOPIC, body)
    conn.process_data_events(0)
    rate = len(payloads) / (time.perf_counter() - t0)
    conn.close()
    return rate


def queue_depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    depth = conn.channel().queue_declare(queue, passive=True).method.message_count
    conn.close()
    return depth


def delete_queue(url: str, queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_delete(queue)
    conn.close()


def wait_processed(monitor: HeartbeatMonitor, count: int, timeout: float) -> float:
    end = time.monotonic() + timeout
    while monitor.processed < count:
        if time.monotonic() > end:
            raise RuntimeError(f"monitor stored {monitor.processed}/{count} within {timeout:.0f}s")
        time.sleep(0.001)
    return time.perf_counter()


def backlog(rabbit: Any, redis: Any, count: int, apps: int) -> dict:
    rabbit_url, redis_url = rabbit.url, redis.url
    client = connect_redis(redis_url)
    client.flushdb()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    payloads = bodies(count, apps)
    publish(rabbit_url, payloads, queue)
    deadline = time.monotonic() + 30
    while queue_depth(rabbit_url, queue) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu0 = time.process_time()
    broker0, redis0 = group_cpu(rabbit.proc.pid), group_cpu(redis.proc.pid)
    t0 = time.perf_counter()
    monitor = HeartbeatMonitor(rabbit_url, client, queue=queue).start()
    try:
        t1 = wait_processed(monitor, count, 120)
    finally:
        monitor.stop()
        cpu = time.process_time() - cpu0
        broker_cpu = group_cpu(rabbit.proc.pid) - broker0
        redis_cpu = group_cpu(redis.proc.pid) - redis0
        delete_queue(rabbit_url, queue)
    stored = len(client.smembers("orch:hb:_index"))
    client.close()
    assert stored == apps, f"index holds {stored} app ids, expected {apps}"
    return {
        "count": count,
        "apps": apps,
        "seconds": t1 - t0,
        "rate": count / (t1 - t0),
        "cpu_seconds": cpu,
        "rate_per_cpu_second": count / cpu,
        "broker_cpu_seconds": broker_cpu,
        "redis_cpu_seconds": redis_cpu,
    }


def _publisher_proc(url: str, payloads: list[bytes], out: multiprocessing.Queue) -> None:
    out.put(publish(url, payloads))


def live(rabbit_url: str, redis_url: str, count: int, apps: int) -> dict:
    client = connect_redis(redis_url)
    client.flushdb()
    payloads = bodies(count, apps)
    with HeartbeatMonitor(rabbit_url, client) as monitor:
        out: multiprocessing.Queue = multiprocessing.Queue()
        proc = multiprocessing.Process(target=_publisher_proc, args=(rabbit_url, payloads, out))
        t0 = time.perf_counter()
        proc.start()
        t1 = wait_processed(monitor, count, 120)
        publish_rate = out.get(timeout=60)
        proc.join(30)
    client.close()
    return {
        "count": count,
        "apps": apps,
        "seconds": t1 - t0,
        "rate": count / (t1 - t0),
        "publish_rate": publish_rate,
    }


def delay(rabbit_url: str, redis_url: str, rounds: int) -> dict:
    client = connect_redis(redis_url)
    probe_client = connect_redis(redis_url)
    app_id = f"delay-{uuid.uuid4().hex[:6]}"
    seen, visible = [], []
    with HeartbeatMonitor(rabbit_url, client) as monitor:
        pub = HeartbeatPublisher(app_id, ["auth"], rabbit_url, interval=60, status="degraded").start()
        try:
            monitor.wait_for(app_id, "degraded", timeout=10)
            for _ in range(rounds):
                t0 = time.time()
                p0 = time.perf_counter()
                pub.set_status("healthy")
                monitor.wait_for(app_id, "healthy", timeout=5, after=t0)
                seen.append((time.perf_counter() - p0) * 1000)
                while not heartbeat_healthy(probe_client, app_id):
                    time.sleep(0.002)
                visible.append((time.perf_counter() - p0) * 1000)
                pub.set_status("degraded")
                monitor.wait_for(app_id, "degraded", timeout=5, after=time.time() - 0.001)
                time.sleep(0.02)
        finally:
            pub.stop()
    client.close()
    probe_client.close()

    def summary(values: list[float]) -> dict:
        ordered = sorted(values)
        return {
            "median_ms": statistics.median(ordered),
            "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)],
            "max_ms": ordered[-1],
        }

    return {"rounds": rounds, "monitor_sees": summary(seen), "redis_probe_sees": summary(visible)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    redis = start_redis()
    rabbit = start_rabbitmq()
    try:
        results = {
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "rabbitmq_startup_seconds": round(rabbit.startup_seconds, 2),
            "backlog_100_apps": backlog(rabbit, redis, args.count, 100),
            "backlog_distinct_apps": backlog(rabbit, redis, args.count, args.count),
            "live_100_apps": live(rabbit.url, redis.url, args.count, 100),
            "delay": delay(rabbit.url, redis.url, args.rounds),
        }
    finally:
        rabbit.stop()
        redis.stop()

    print(
        f"private rabbitmq-server started in {results['rabbitmq_startup_seconds']:.1f}s;"
        f" cpus: {results['cpus']},"
        f" load average before: {', '.join(f'{x:.1f}' for x in results['load_average_before'])}"
    )
    ok = True
    for name in ("backlog_100_apps", "backlog_distinct_apps", "live_100_apps"):
        r = results[name]
        met = r["rate"] >= GOAL_RATE
        ok &= met if name.startswith("backlog") else True
        extra = f", publisher {r['publish_rate']:,.0f}/s" if "publish_rate" in r else ""
        if "cpu_seconds" in r:
            extra += (
                f"; cpu: monitor {r['cpu_seconds']:.2f}s ({r['rate_per_cpu_second']:,.0f}/cpu-s),"
                f" rabbitmq {r['broker_cpu_seconds']:.2f}s, redis {r['redis_cpu_seconds']:.2f}s"
            )
        print(
            f"{name:22s} {r['count']:,} heartbeats, {r['apps']:,} app ids: {r['rate']:,.0f}/s"
            f" in {r['seconds']:.2f}s{extra}  goal >= {GOAL_RATE:,.0f}/s {'met' if met else 'MISSED'}"
        )
    d = results["delay"]
    for key in ("monitor_sees", "redis_probe_sees"):
        s = d[key]
        met = s["p95_ms"] <= GOAL_DELAY_MS
        ok &= met
        print(
            f"delay healthy -> {key:16s} median {s['median_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms,"
            f" max {s['max_ms']:.1f} ms over {d['rounds']} rounds  goal p95 <= {GOAL_DELAY_MS:.0f} ms"
            f" {'met' if met else 'MISSED'}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
