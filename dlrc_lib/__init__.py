"""dlrc: regenerate every table and figure of the DLRC lymph-node-metastasis study from images."""
__version__ = "0.1.0"
