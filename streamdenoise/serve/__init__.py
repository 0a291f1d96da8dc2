"""``streamdenoise serve``: many cameras in one process around one shared denoiser per model.

Modules: :mod:`.config` (the YAML file), :mod:`.service` (the stateless denoise service and
its fair batching thread), :mod:`.camera` (one camera's threads and figures),
:mod:`.recording` (segmented files, retention), :mod:`.telemetry` (Prometheus),
:mod:`.http` (health, API, dashboard), :mod:`.server` (the whole, reload, shutdown).
"""
