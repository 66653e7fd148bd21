"""HTML pages and pictures: the building blocks of the data report, the run report.

A leaf: imports nothing of ours, so components and reports may both use it.
"""
