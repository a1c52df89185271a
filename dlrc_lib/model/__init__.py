"""The DLRC model: fit (:mod:`.dlrc`), nomogram, export to JSON and ``dlrc predict``."""
