"""The PMI stage, genome -> COUNTS -> PMI table: exact genome-wide n-gram counting
(:mod:`.ngram_counts`, sized by :mod:`.memory_plan`), PMI scoring with GeneMask's frequency
discount (:mod:`.scores`) and the ``genemask-pmi`` command (:mod:`.cli`). The file formats
live in :mod:`genemask_preprocess.formats.ngram_counts_file` and
:mod:`genemask_preprocess.formats.pmi_table`; the latter is all the training path needs.
"""
