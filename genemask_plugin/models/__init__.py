"""The ``genemask_*`` architectures (:mod:`.genemask_roberta`, imported by fairseq with the user dir)
and the constants every command assumes about them (:mod:`.defaults`, importable without fairseq).

Importing this package registers nothing, so ``--help`` texts can read :mod:`.defaults` cheaply.
"""
