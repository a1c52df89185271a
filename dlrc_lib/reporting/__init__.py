"""Runs and what people see: run artifacts, the claims' verdict, the report page, snapshots, the notebook
runner, widgets, the command line."""
