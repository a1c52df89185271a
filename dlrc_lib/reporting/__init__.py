"""What people see of a finished run: the claims' verdict, the checklists, the paper's tables side
by side, the index page, snapshots, the sensitivity analysis' figure and the notebooks' widgets.
Nothing here runs notebooks or knows where a run keeps its files (that is :mod:`dlrc_lib.run`)."""
