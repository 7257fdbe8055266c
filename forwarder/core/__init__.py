"""The core: the pipeline and its rooms (reading, reports, delivery, bad files), the checkpoint,
the observer interface, and the runner of many pipelines."""
