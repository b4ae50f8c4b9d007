"""``genemask-motifs``: do the top-PMI k-mers of a PMI table match known TF motifs (JASPAR)?

Motif analysis is a downstream consumer of the preprocessing stage, not part of
training: it reads PMI tables (:mod:`genemask_preprocess.formats.pmi_table`) and
few-shot ``sequence<TAB>label`` files (:mod:`genemask_preprocess.formats.text_table`)
through the genome-side codec (:mod:`genemask_preprocess.kmers`), and never imports
fairseq. It therefore sits in ``preprocess/`` beside the stages whose formats it reads,
with its own optional extra ``genemask-plugin[motifs]`` (pyjaspar, Biopython), which
only :mod:`.jaspar` imports, lazily.

Modules: :mod:`.jaspar` (loading motifs), :mod:`.pwm_scoring` (k-mer x PWM scores),
:mod:`.enrichment` (k-mer sets and statistics), :mod:`.sequence_sets` (positives vs
background sequences), :mod:`.report` (the outputs) and :mod:`.cli`.
"""

from genemask_preprocess.errors import InputError


class MotifAnalysisError(InputError):
    """A problem with the user's input or environment for the motif analysis (one-line message)."""
