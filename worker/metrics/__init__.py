"""The product's own metrics: counters and histograms kept in Redis (so every process on every
machine adds to one set), gauges read from Redis when Prometheus scrapes ``/metrics``.

``recorder.py`` is what the other packages call (one line per hook); ``keys.py`` names the Redis
keys; ``gauges.py`` and ``queues.py`` read the deployment's state at scrape time (the console
and ``doctor`` read the same); ``worker/web/metrics.py`` exports it all.
"""
