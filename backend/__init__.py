"""MedSight: chest X-ray triage backend. Decision support, not diagnosis."""

__version__ = "0.1.0"

DISCLAIMER = (
    "MedSight is a decision-support tool, not a diagnosis. Every result must be reviewed by a "
    "qualified clinician before it informs care."
)
