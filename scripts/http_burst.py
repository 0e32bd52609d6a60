#!/usr/bin/env python3
"""HTTP burst against `serve --http`: N GET /recommendations/{customer_id} requests, C at a time (one keep-alive
connection per worker), for customers taken evenly from customers.csv. Prints one Markdown table row:
| label | answered (200 / 404) | errors | p50 ms | p99 ms | max ms |. An error is a failed connection or a
status other than 200 and 404 (404 = a customer with no purchase yet). Exits 1 when there was an error.
    scripts/http_burst.py HOST:PORT CUSTOMERS_CSV N C LABEL"""
import csv
import http.client
import sys
import threading
import time

addr, customers_csv, n, conc, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
with open(customers_csv, newline="") as f:
    ids = [row["customer_id"] for row in csv.DictReader(f)]
step = max(1, len(ids) // n)
targets = [ids[(i * step) % len(ids)] for i in range(n)]
host, port = addr.rsplit(":", 1)
lat, codes, errors = [], {}, []
lock = threading.Lock()
jobs = iter(range(n))


def worker():
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    while True:
        with lock:
            i = next(jobs, None)
        if i is None:
            break
        t = time.perf_counter()
        try:
            conn.request("GET", f"/recommendations/{targets[i]}")
            r = conn.getresponse()
            r.read()
            code = r.status
        except Exception as e:  # counted and reported, never dropped
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            with lock:
                errors.append(repr(e))
            continue
        ms = (time.perf_counter() - t) * 1000
        with lock:
            lat.append(ms)
            codes[code] = codes.get(code, 0) + 1
            if code not in (200, 404):
                errors.append(f"status {code}")
    conn.close()


threads = [threading.Thread(target=worker) for _ in range(conc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, round((len(lat) - 1) * q))] if lat else float("nan")
answered = f"{codes.get(200, 0)} / {codes.get(404, 0)}"
print(f"| {label} | {answered} | {len(errors)} | {pct(0.5):.1f} | {pct(0.99):.1f} | {lat[-1] if lat else float('nan'):.1f} |")
if errors:
    print(f"first errors: {errors[:3]}", file=sys.stderr)
    sys.exit(1)
