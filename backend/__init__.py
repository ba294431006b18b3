"""MedSight: chest X-ray triage backend. Decision support, not diagnosis."""

__version__ = "0.1.0"
