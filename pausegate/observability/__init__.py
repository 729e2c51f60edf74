"""What an on-call engineer sees from outside: traces, metrics, and log lines that name their trace.

- ``tracing``: one OpenTelemetry trace per pause, from the API request through the workflow and every
  activity (Temporal's ``TracingInterceptor`` on every client and worker, FastAPI's server spans);
  spans go to an OTLP endpoint when one is configured, nowhere otherwise.
- ``worker_metrics``: the worker's Prometheus endpoint (the SDK's own metrics, and pausegate's,
  recorded through the SDK's replay-safe metric meter).
- ``api_metrics``: the API's ``/metrics`` (the pauses as they are now, and the API's refusals).
"""
