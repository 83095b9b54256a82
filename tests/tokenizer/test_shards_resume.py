"""A shards run killed with SIGKILL resumes from its last finished shard, byte-identically."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.stage import Runtime
from gristmill.tokenize.shards import ShardsConfig, write_shards
from tests.tokenizer.shards_fixtures import make_docs, make_tokenizer, write_docs

CFG = dict(shard_tokens=1500, val_fraction=0.1, seed=0)

# Runs the real stage in a child process and SIGKILLs it right after it has recorded
# its second finished shard (the first progress save happens before any shard).
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import gristmill.tokenize.shards as sh
    from gristmill.stage import Runtime

    original, calls = sh.save_progress, []

    def save_then_die(*args):
        original(*args)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    sh.save_progress = save_then_die
    if __name__ == "__main__":
        inp, tok, out = map(Path, sys.argv[1:4])
        sh.write_shards(inp, tok, out, sh.ShardsConfig(**{cfg}), Runtime(workers=1))
""")


@pytest.mark.slow
def test_resume_after_sigkill_is_byte_identical(tmp_path, caplog):
    write_docs(tmp_path / "in", make_docs(600, seed=2), per_part=300, row_group=30)
    tok = make_tokenizer(tmp_path / "tokenizer.json")
    script = tmp_path / "killer.py"
    script.write_text(KILLER.replace("{cfg}", repr(CFG)))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "in"), str(tok), str(out)],
                            start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        try:  # the child's Dask workers: same session, killed with it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (out / "manifest.json").exists()
    progress = json.loads((out / ".work" / "progress.json").read_text())
    done = [e["file"] for s in progress["splits"].values() for e in s["shards"]]
    assert len(done) == 2
    before = {f: (out / f).stat() for f in done}

    with caplog.at_level(logging.INFO, logger="gristmill.tokenize.shards"):
        resumed = write_shards(tmp_path / "in", tok, out, ShardsConfig(**CFG), Runtime(workers=1))
    encoded = [r.getMessage() for r in caplog.records if "to encode" in r.getMessage()]
    n_units, n_todo = map(int, re.findall(r"\d+", encoded[0]))
    assert n_todo < n_units                       # units behind the finished shards were not redone
    for f, st in before.items():                  # finished shards were kept, not rewritten
        assert (out / f).stat().st_ino == st.st_ino and (out / f).stat().st_mtime_ns == st.st_mtime_ns

    clean = write_shards(tmp_path / "in", tok, tmp_path / "clean", ShardsConfig(**CFG), Runtime(workers=2))
    assert shard_manifest_of(resumed.manifest).shards == shard_manifest_of(clean.manifest).shards
    assert resumed.manifest.counts == clean.manifest.counts
    files = sorted(p.name for p in (tmp_path / "clean").iterdir() if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    for name in files:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert not (out / ".work").exists()
