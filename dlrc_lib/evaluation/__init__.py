"""Evaluation: how models, readers and the study's acquisitions are described and compared."""
