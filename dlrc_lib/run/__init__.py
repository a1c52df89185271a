"""Running the study: the ``dlrc`` command line and its verbs, the notebook runner, sweeps,
JupyterLab, a run folder's layout and its writes (:class:`~dlrc_lib.run.artifacts.Artifacts`),
and :func:`~dlrc_lib.run.paths.open_run`, the first call of every notebook.

This is the top layer: only it knows where a run keeps what (``reports/<run>/results/…``, whose
schema is :mod:`dlrc_lib.record`); it reads a finished notebook's record into the typed objects that :mod:`dlrc_lib.model` and
:mod:`dlrc_lib.evaluation` take, and hands finished runs to :mod:`dlrc_lib.reporting` to render."""
