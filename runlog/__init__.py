"""What a run shows people and what it keeps in its log: shared by runners, models and serving.

A leaf package: it imports nothing of the project, so every layer may use it.
"""
