"""Known TF motifs: JASPAR position frequency matrices, read offline from pyjaspar's bundled SQLite.

Needs the optional extra ``genemask-plugin[motifs]`` (pyjaspar and Biopython); both are
imported only when motifs are loaded, and a missing one is a one-line
:class:`~genemask_preprocess.motifs.MotifAnalysisError` naming the extra.
"""

from __future__ import annotations

from genemask_preprocess.command_line import is_out_of_memory
from genemask_preprocess.motifs import MotifAnalysisError

MOTIFS_EXTRA = "pip install 'genemask-plugin[motifs]'"


def _require_motif_packages():
    """Import pyjaspar and Bio.motifs, or raise a one-line error naming the extra."""
    try:
        import pyjaspar
        from Bio import motifs  # noqa: F401
    except ImportError as exc:
        if is_out_of_memory(exc):  # installed, but no memory to load it (ulimit -v): not a missing package
            raise
        raise MotifAnalysisError(
            f"JASPAR motifs need the optional packages pyjaspar and biopython ({exc.name} is missing): {MOTIFS_EXTRA}"
        ) from None
    return pyjaspar


def jaspar_releases() -> list[str]:
    """The JASPAR releases bundled in the installed pyjaspar, oldest first."""
    pyjaspar = _require_motif_packages()
    return sorted(pyjaspar.jaspar_releases)


def load_jaspar_motifs(
    release: str | None = None, collection: str = "CORE", tax_group: str = "vertebrates"
):
    """Latest version of every JASPAR motif of a collection and taxonomic group, offline.

    ``release`` defaults to the newest one bundled in pyjaspar. Returns
    ``(release, [Bio.motifs.jaspar.Motif])`` sorted by matrix id, with JASPAR's
    standard pseudocounts set.
    """
    pyjaspar = _require_motif_packages()
    from Bio.motifs import jaspar

    release = release or pyjaspar.JASPAR_LATEST_RELEASE
    if release not in pyjaspar.jaspar_releases:
        raise MotifAnalysisError(
            f"JASPAR release {release!r} is not bundled in pyjaspar {pyjaspar.__version__}; "
            f"choose one of {', '.join(jaspar_releases())}"
        )
    database = pyjaspar.jaspardb(release=release)
    found = database.fetch_motifs(collection=collection, tax_group=[tax_group], all_versions=False)
    if not found:
        raise MotifAnalysisError(
            f"{release} has no {collection} motifs for tax group {tax_group!r}"
        )
    found = sorted(found, key=lambda m: m.matrix_id)
    for motif in found:
        # JASPAR stores raw counts; sqrt(N)-scaled pseudocounts (JASPAR's own rule) keep the log-odds finite.
        motif.pseudocounts = jaspar.calculate_pseudocounts(motif)
    return release, found
