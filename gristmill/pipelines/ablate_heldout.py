"""The held-out text of an ablation carved out of the raw input: what ingest set aside.

With ``[ablate] heldout_fraction`` every arm's ingest removes the documents whose id hashes
into that fraction (reason ``heldout``, text kept; see
:func:`gristmill.corpus.ingest.is_heldout`), so no arm's later stage ever reads them. All arms
share that ingest folder. :func:`write_carved` copies those documents, read from exactly the
removed parts the ingest manifest lists, into ``ROOT/ablate/heldout/`` as one ``.txt`` file each
(in input order) plus ``index.json`` (id, source, file; its format is
:mod:`gristmill.formats.ablation`'s), the form ``inspect compression`` and the measurement read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gristmill.corpus.documents import iter_batches, removed_files
from gristmill.errors import InputError
from gristmill.formats.ablation import HELDOUT_INDEX, HeldoutDocument, HeldoutIndex, read_heldout_index, \
    write_heldout_index
from gristmill.formats.stage_inputs import finished_stage
from gristmill.manifest import atomic_write_bytes

log = logging.getLogger(__name__)

REASON = "heldout"


def carved_documents(ingest_dir: Path) -> list[dict[str, str]]:
    """``{id, source, text}`` of every document the ingest at ``ingest_dir`` held out, in order."""
    m = finished_stage(ingest_dir)
    docs = []
    for batch in iter_batches(removed_files(ingest_dir), columns=["id", "source", "reason", "text"]):
        for row in batch.to_pylist():
            if row["reason"] == REASON:
                docs.append({"id": row["id"], "source": row["source"], "text": row["text"]})
    expected = (m.counts.removed.get(REASON, 0) if m.counts else 0)
    if len(docs) != expected:  # parts checked against the manifest, so only an edited file gets here
        raise InputError(f"{ingest_dir}: {len(docs)} held-out records in removed/ where its manifest counts "
                         f"{expected}; rerun ingest")
    return docs


def write_carved(ingest_dir: Path, dest: Path) -> int:
    """Write the held-out documents of ``ingest_dir`` into ``dest``; return how many.

    ``dest`` is the ablation's own folder: only files its earlier ``index.json`` listed are
    replaced or removed, and a folder without one that holds anything is refused.
    """
    docs = carved_documents(ingest_dir)
    if not docs:
        m = finished_stage(ingest_dir)
        n = m.counts.n_in if m.counts else 0
        raise InputError(f"{ingest_dir}: heldout_fraction held out none of its {n:,} records; raise "
                         "[ablate] heldout_fraction")
    old = _previous_files(dest)
    dest.mkdir(parents=True, exist_ok=True)
    index = []
    for i, d in enumerate(docs):
        name = f"{i:05d}.txt"
        atomic_write_bytes(dest / name, d["text"].encode("utf-8"))
        index.append(HeldoutDocument(file=name, id=d["id"], source=d["source"]))
    for stale in sorted(old - {e.file for e in index}):
        (dest / stale).unlink(missing_ok=True)
    write_heldout_index(dest, HeldoutIndex(source=str(ingest_dir), documents=tuple(index)))
    log.info("ablate: %d held-out documents in %s", len(docs), dest)
    return len(docs)


def _previous_files(dest: Path) -> set[str]:
    """The files the folder's earlier index listed (checked inside ``dest``): the only ones replaced."""
    if not dest.exists():
        return set()
    if not (dest / HELDOUT_INDEX).is_file():
        if any(dest.iterdir()):
            raise InputError(f"{dest}: exists and is not an ablation's held-out folder (no {HELDOUT_INDEX}); "
                             "move it away")
        return set()
    try:
        index = read_heldout_index(dest)
    except InputError as e:
        raise InputError(f"{e.message}; move {dest} away") from None
    return {d.file for d in index.documents}
