"""ticketing-bench: a ghz-compatible gRPC load generator on grpcio.

Modules, one concern each: ``cli`` (flags), ``options`` (validated options),
``durations`` (Go durations), ``templates`` (ghz call-data templates),
``payloads`` (request bytes), ``methods`` (reflection and descriptors),
``schedule`` (load and concurrency schedules), ``channels`` (connections),
``engine`` (workers and the arrival clock), ``runner`` (processes),
``tally`` (measurements), ``report`` (ghz's JSON and text output).
"""
