"""gristmill ablate with a held-out set carved out of the raw input: the carved documents are the
ones their id hashes into the fraction, no arm reads them, every count reconciles, and a rerun
after one arm's training was lost runs that training only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.config import ConfigKeyError
from gristmill.errors import InputError
from gristmill.corpus.ingest import is_heldout
from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.pipelines.ablate import run_ablation
from gristmill.pipelines.ablate_spec import load_ablation
from gristmill.train.run import load_run
from tests.demo import demo_docs
from tests.pipelines.pipeline_files import ABLATE, DEDUP

FRACTION = 0.25


def _write(tmp: Path) -> tuple[Path, list[dict], list[dict]]:
    docs = [d for d in demo_docs() if d["source"] == "kjv"][:14]
    held = [d for d in docs if is_heldout(d["id"], FRACTION)]
    kept = [d for d in docs if not is_heldout(d["id"], FRACTION)]
    assert held and len(kept) >= 8  # this corpus and fraction carve some of each
    # Copies (for dedup) only of kept documents: a copy of a held-out one has another id.
    copies = [{**d, "id": d["id"] + "-copy"} for d in kept[:3] if not is_heldout(d["id"] + "-copy", FRACTION)]
    with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in docs + copies:
            f.write(json.dumps({"id": d["id"], "text": d["text"][:1500]}) + "\n")
    p = tmp / "ablate.toml"
    p.write_text(ABLATE.format(dedup=DEDUP).replace('heldout = "heldout"', f"heldout_fraction = {FRACTION}"),
                 encoding="utf-8")
    return p, held, kept + copies


@pytest.fixture(scope="module")
def carved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate-carve")
    path, held, kept = _write(tmp)
    abl = load_ablation(path)
    said: list[str] = []
    rows = run_ablation(abl, say=said.append).arms
    return abl, rows, said, held, kept


def test_carved_set_is_the_hashed_ids_and_counts_reconcile(carved):
    abl, _, said, held, kept = carved
    index = json.loads((abl.heldout / "index.json").read_text())
    assert [e["id"] for e in index["documents"]] == [d["id"] for d in held]
    for e, d in zip(index["documents"], held):
        assert (abl.heldout / e["file"]).read_text(encoding="utf-8") == d["text"][:1500]
    ingest = read_stage_manifest(abl.arms["raw"].layout.dir("ingest"))
    c = ingest.counts
    assert c.removed == {"heldout": len(held)}
    assert c.n_in == c.kept + c.n_removed == len(held) + len(kept)
    assert ingest.config["heldout_fraction"] == FRACTION
    assert f"held-out text: {len(held)} documents carved out of the raw input into {abl.heldout}" in said


def test_carved_documents_reach_no_arm(carved):
    abl, rows, _, held, kept = carved
    held_ids, held_texts = {d["id"] for d in held}, [d["text"][:1500] for d in held]
    for pipe in abl.arms.values():
        docs_dir = pipe.layout.dir(pipe.layout.stages[-4])  # the arm's last corpus stage
        ids = {i for f in docs_dir.glob("part-*.parquet") for i in pq.read_table(f)["id"].to_pylist()}
        assert ids and not ids & held_ids
        run = load_run(pipe.layout.dir("train"))
        seen = 0
        for f in pipe.layout.dir("shards").glob("*.arrow"):
            with pa.memory_map(str(f)) as src:
                for batch in pa.ipc.open_stream(src):
                    for tokens in batch.column("input_ids").to_pylist():
                        text = run.decode([i for i in tokens if i != run.eos_id])
                        seen += 1
                        assert not any(h[:300] in text for h in held_texts)
        assert seen == len(ids)
    assert all(r.heldout_bytes == sum(len(t.encode()) for t in held_texts) for r in rows)


def test_rerun_after_a_lost_arm_runs_only_it(carved):
    abl, rows, _, _, _ = carved
    lost = abl.arms["dedup"].layout.dir("train")
    shutil.rmtree(lost)  # the arm's training never finished
    said: list[str] = []
    again = run_ablation(abl, say=said.append).arms
    ran = [s.split(":")[0] for s in said if ": running" in s]
    assert ran == ["train"]
    assert [s for s in said if s.startswith("train: running")] and (lost / "manifest.json").is_file()
    assert "arm raw: measured before (same training, same held-out text)" in said
    assert any(s.startswith("arm dedup: measuring") for s in said)
    assert again[0] == rows[0]  # raw: its cached figures
    assert again[1].heldout_bpb == pytest.approx(rows[1].heldout_bpb, rel=1e-6)  # same seed, same data


def test_heldout_and_fraction_are_exclusive(tmp_path):
    path, _, _ = _write(tmp_path)
    (tmp_path / "h.txt").write_text("held out", encoding="utf-8")
    text = path.read_text().replace("[ablate]\n", '[ablate]\nheldout = "h.txt"\n')
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index('heldout = "h.txt"') + 1
    with pytest.raises(ConfigKeyError, match="give either heldout .* or heldout_fraction") as e:
        load_ablation(path)
    assert (e.value.table, e.value.key, e.value.line) == ("ablate", "heldout", line)
    r = CliRunner().invoke(cli, ["ablate", str(path), "--dry-run"])
    assert r.exit_code == 2 and r.output.startswith(f"Error: {path}:{line}: [ablate] heldout: give either heldout")
    assert isinstance(r.exception, SystemExit)



def test_is_heldout_is_a_uniform_function_of_the_id():
    ids = [f"doc-{i}" for i in range(20_000)]
    picked = [i for i in ids if is_heldout(i, 0.05)]
    assert 900 < len(picked) < 1100  # 5 % of 20,000 = 1,000; a binomial sd of 31
    assert picked == [i for i in reversed(ids) if is_heldout(i, 0.05)][::-1]  # order plays no part
    assert set(picked) <= {i for i in ids if is_heldout(i, 0.2)}  # a larger fraction holds a smaller one
    assert not any(is_heldout(i, 0.0) for i in ids[:100])


def test_shipped_example_shares_ingest_across_its_three_arms(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    abl = load_ablation(repo / "pipelines" / "ablate-demo.toml", root=tmp_path)
    assert list(abl.arms) == ["raw", "dedup", "clean"] and abl.carved
    assert len({pipe.layout.dir("ingest") for pipe in abl.arms.values()}) == 1
    assert abl.arms["clean"].configs["clean"].profile == "books"
    assert {pipe.configs["ingest"].heldout_fraction for pipe in abl.arms.values()} == {0.02}
    assert abl.heldout == tmp_path / "ablate" / "heldout"


def test_a_heldout_index_naming_a_file_outside_its_folder_is_refused(tmp_path):
    from gristmill.pipelines.ablate_heldout import _previous_files

    dest = tmp_path / "heldout"
    dest.mkdir()
    (dest / "index.json").write_text(json.dumps({"format": "gristmill-ablate-heldout", "from": "x", "documents": [
        {"file": "../precious.txt", "id": "a", "source": "s"}]}), encoding="utf-8")
    with pytest.raises(InputError) as e:
        _previous_files(dest)
    assert "\n" not in e.value.message and e.value.message.startswith(f"{dest / 'index.json'}: ")
    assert e.value.message.endswith(f"is not a plain path inside the folder; move {dest} away")
