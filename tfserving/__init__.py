"""TF Serving's own file formats, shared by the Pusher (writes them) and the server (reads
them): the warmup file and the model config file's version labels.

Imports nothing of the pipeline or the server, so both may use it.
"""
