"""Reporting layer: run folders, notebook set-up, report page, runner, widgets, command line."""
