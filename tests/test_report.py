"""gristmill report: one self-contained HTML page that parses and holds every figure."""

from __future__ import annotations

import base64
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.manifest import Counts
from gristmill.stage import Runtime, StageRun
from gristmill.tokenize.shards import ShardsConfig, write_shards
from tests.tokenizer.shards_fixtures import _FixtureConfig, make_docs, make_tokenizer, write_docs

CHROMIUM = Path("/usr/bin/chromium")


class Page(HTMLParser):
    """Collects headings, images and text; fails on unbalanced section tags."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_heading = tag in ("h1", "h2", "h3") or self._in_heading

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self.headings.append(data.strip())


def fake_stage(path: Path, stage: str, counts: Counts | None, **extra) -> None:
    run = StageRun(stage, path, _FixtureConfig(name=stage), inputs=[], force=True)
    run.begin()
    run.finish(counts, **extra)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    fake_stage(root / "01-ingest", "ingest", Counts(n_in=130, kept=120, removed={"malformed_json": 10}))
    fake_stage(root / "03-dedup", "dedup", Counts(n_in=120, kept=110, removed={"exact_duplicate": 7,
                                                                                "near_duplicate": 3}))
    write_docs(root / "docs", make_docs(110, seed=6))  # a real dataset (stage "fixture": not in the funnel)
    fake_stage(root / "04-tokenizer", "tokenizer", None, vocab_size=400, preset="gpt2", eos_id=0)
    tok = make_tokenizer(root / "04-tokenizer" / "tokenizer.json")
    write_shards(root / "docs", tok, root / "05-shards",
                 ShardsConfig(shard_tokens=1000, val_fraction=0.2), Runtime(workers=1))
    run = root / "06-train"
    run.mkdir()
    lines = [{"step": s, "loss": 6.0 / (1 + s / 10), "tokens_per_s": 1000.0} for s in range(1, 41)]
    lines += [{"step": 20, "val_loss": 2.5, "val_bpb": 1.9}, {"step": 40, "val_loss": 1.9, "val_bpb": 1.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 41, "lo')
    return root


def test_report_parses_and_holds_the_figures(pipeline, tmp_path):
    out = tmp_path / "report.html"
    r = CliRunner().invoke(cli, ["report", str(pipeline), "-o", str(out)])
    assert r.exit_code == 0, r.output
    page = Page()
    page.feed(out.read_text(encoding="utf-8"))
    page.close()
    alts = [img["alt"] for img in page.images]
    assert alts == ["document funnel", "document length histogram", "rank-frequency plot", "loss curve"]
    for img in page.images:                          # embedded, never linked
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:4] == b"\x89PNG"
    assert {"Documents", "Tokenizer", "Token shards", "Training"} <= set(page.headings)
    text = " ".join(page.text)
    for reason in ("malformed_json: 10", "exact_duplicate: 7", "near_duplicate: 3"):
        assert reason in text
    assert "1.9" in text and "never appear" in text and "<|endoftext|>" in text


def test_report_of_an_empty_directory_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["report", str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "no stage manifests" in r.output


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs a headless chromium at /usr/bin/chromium")
def test_report_renders_in_a_real_browser(pipeline, tmp_path):
    out = tmp_path / "report.html"
    assert CliRunner().invoke(cli, ["report", str(pipeline), "-o", str(out)]).exit_code == 0
    shot = tmp_path / "report.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1100,3000", out.as_uri()],
                   check=True, timeout=120, capture_output=True)
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1100, 3000)
    # the page is not blank: text, tables and plots darken pixels from the top to the bottom
    for top in (0, 1000, 2000):
        band = img.crop((0, top, 1100, top + 1000)).histogram()
        assert sum(band[:200]) > 0.01 * 1100 * 1000, f"blank band at y={top}"
