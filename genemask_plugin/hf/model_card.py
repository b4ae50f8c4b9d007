"""The model card (``README.md``) written beside an exported model: what it is and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass

from genemask_preprocess.kmers import KmerTokenization


@dataclass(frozen=True)
class ModelFacts:
    """What the card states, all read from the fairseq checkpoint and its dictionaries."""

    checkpoint: str
    arch: str
    task: str
    k: int
    num_updates: int | None
    mask_strategy: str | None
    pmi_table: str | None
    layers: int
    hidden: int
    heads: int
    max_positions: int
    labels: tuple[str, ...] = ()
    """Class names in class order (classifiers only)."""
    restored_from: str | None = None
    """The checkpoint a fine-tuning run started from (classifiers only)."""
    stride: int = 1
    """1 (overlapping k-mers) or k (non-overlapping k-mers, a remainder as single bases)."""


def _shown(value) -> str:
    return "not recorded in the checkpoint" if value in (None, "") else f"`{value}`"


def model_card(facts: ModelFacts) -> str:
    """Markdown text of the card."""
    classifier = bool(facts.labels)
    auto_class = "AutoModelForSequenceClassification" if classifier else "AutoModelForMaskedLM"
    tokenization = KmerTokenization(facts.k, facts.stride)
    tokens = tokenization.describe()
    kind = (f"a `{facts.task}` classifier over {len(facts.labels)} classes "
            f"({', '.join(facts.labels)})" if classifier else "a masked DNA language model")
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {'text-classification' if classifier else 'fill-mask'}",
        "tags: [genomics, dna, genemask, fairseq]",
        "---",
        f"# GeneMask {facts.arch} ({tokens})",
        "",
        f"This is {kind}, exported by `genemask-hf export` from the fairseq checkpoint "
        f"`{facts.checkpoint}`. It is a plain RoBERTa ({facts.layers} layers, {facts.hidden} hidden, "
        f"{facts.heads} heads, up to {facts.max_positions} tokens including `<s>` and `</s>`): "
        "no custom code is needed.",
        "",
        "## Pretraining",
        "",
        f"- k: **{facts.k}** ({tokens}, stride {facts.stride})",
    ]
    if classifier:
        lines.append(f"- fine-tuned from: {_shown(facts.restored_from)} "
                     "(its own card states how that model was pretrained)")
    else:
        lines += [
            f"- masking strategy: {_shown(facts.mask_strategy)}",
            f"- PMI table: {_shown(facts.pmi_table)}",
        ]
    lines += [
        f"- updates: {_shown(facts.num_updates)}",
        "",
        "## How to tokenize",
        "",
        *_how_to_tokenize(tokenization),
        "",
        "```python",
        f"from transformers import AutoTokenizer, {auto_class}",
        "tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)",
        f"model = {auto_class}.from_pretrained(MODEL_DIR).eval()",
        f"batch = tokenizer([{'kmer_string' if tokenization.overlapping else 'dna'}], return_tensors='pt')",
        "logits = model(**batch).logits",
        "```",
        "",
    ]
    return "\n".join(lines)


def _how_to_tokenize(tokenization: KmerTokenization) -> list[str]:
    k = tokenization.k
    ids = ("It adds `<s>` … `</s>`, and its ids are the fairseq dictionary's ids (`<s>`=0, `<pad>`=1, "
           "`</s>`=2, `<unk>`=3, then the k-mers")
    if tokenization.overlapping:
        return [
            f"The tokenizer reads DNABERT's convention: space-separated overlapping {k}-mers, "
            f"upper-case A/C/G/T. {ids}, then `<mask>`). A word that is "
            f"not a {k}-mer of the vocabulary becomes `<unk>`. Turn raw DNA into that string with "
            "`genemask_preprocess.kmers.dna_to_kmer_string` (from the genemask-plugin package) or "
            f"`' '.join(dna[i:i + {k}] for i in range(len(dna) - {k - 1}))`."
        ]
    if k == 1:
        cut = "one token per base"
    else:
        cut = (f"cut into {k}-mers from its start, and a remainder of fewer than {k} bases becomes single-base "
               "tokens (the Nucleotide Transformer's rule)")
    singles = ", then the single bases A, C, G, T" if tokenization.remainder_bases else ""
    return [
        f"The tokenizer reads raw upper-case DNA (A/C/G/T): each whitespace-separated piece is {cut}. "
        f"{ids}{singles}, then `<mask>`). Any other letter becomes `<unk>`; `decode` joins the tokens back "
        "into DNA."
    ]
