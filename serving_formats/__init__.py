"""File formats the server shares with other jobs: TF Serving's own (the warmup file and the
model config file's version labels, written by the Pusher and read by the server) and the
server's request log (written by the server, read by the monitor).

The commands that edit the model config file live here, beside its format:
`python -m serving_formats.version_labels` (canary, promote) and
`python -m serving_formats.rollback` (pin an older version).

Imports nothing of the pipeline, the server or the monitor, so all of them may use it.
"""
