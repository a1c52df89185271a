"""Runs and what people see: run artifacts, the report page, the notebook runner, widgets, the command line."""
