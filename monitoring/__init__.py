"""Offline jobs over the server's request logs: the drift monitor (monitor.py), its statistics
(drift.py), the log's reading side (traffic.py) and its report (report.py).

Not part of the server: imports nothing of serving/ (the log's format comes from serving_formats/,
the reference profile's from models/, pages from pages/).
"""
