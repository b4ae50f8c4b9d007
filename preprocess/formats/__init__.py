"""One reader (and writer) per file format; each module's docstring is its format's spec.

Nothing here is imported eagerly: the training path imports only the numpy-only formats
it needs (``pmi_table``), never pysam.
"""
