"""Reporting: what a finished run says about the paper (claims, the report page, snapshots)."""
