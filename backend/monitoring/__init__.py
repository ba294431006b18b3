"""Drift monitoring: recent analyses against the vision model's reference population."""
