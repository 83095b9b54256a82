"""`tokenizer eval` figures checked against an independent count, and `tokenizer show` output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer

from gristmill.cli import cli
from gristmill.errors import InputError
from gristmill.tokenize.evaluate import EvalConfig, evaluate
from tests.tokenizer.helpers import demo_docs, train_small, write_dataset

CJK = "中文字符测试。日本語のテキスト、カタカナ。" * 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    tok = train_small(tmp / "t", docs=demo_docs()[:30], vocab_size=700)
    docs = [dict(d) for d in demo_docs()[100:110]]
    docs += [{"id": f"zh{i}", "text": CJK + str(i), "source": "cjk"} for i in range(3)]
    return tok, write_dataset(tmp / "eval-docs", docs)


def test_figures_match_an_independent_count(setup):
    tok_path, data = setup
    report = evaluate([tok_path], data, EvalConfig(by="source"))
    r = report["results"][0]
    ref = Tokenizer.from_file(str(tok_path))
    english = [d["text"] for d in demo_docs()[100:110]]
    n_tokens = sum(len(ref.encode(t, add_special_tokens=False).ids) for t in english)
    n_bytes = sum(len(t.encode()) for t in english)
    eng_groups = {k: v for k, v in r["groups"].items() if k != "cjk"}
    assert sum(g["tokens"] for g in eng_groups.values()) == n_tokens
    assert sum(g["bytes"] for g in eng_groups.values()) == n_bytes
    assert r["overall"]["tokens"] == sum(g["tokens"] for g in r["groups"].values())
    assert r["overall"]["docs"] == 13
    g = r["groups"]["cjk"]
    assert g["bytes_per_token"] == pytest.approx(g["bytes"] / g["tokens"], abs=1e-4)
    assert g["chars"] == 3 * len(CJK) + 3
    # 700 tokens learned from English: CJK characters are spelled in byte fragments
    assert g["byte_fallback_rate"] > 0.5
    assert all(v["byte_fallback_rate"] == 0 for v in eng_groups.values())
    longest = r["vocab"]["longest"]
    assert [t["bytes"] for t in longest] == sorted((t["bytes"] for t in longest), reverse=True)
    used = {i for t in english + [CJK + str(i) for i in range(3)] for i in ref.encode(t).ids}
    assert r["vocab"]["used"] == len(used - {0})
    assert r["vocab"]["unused_share"] == pytest.approx(1 - len(used) / 699, abs=1e-3)


def test_side_by_side_with_cl100k(setup):
    tok_path, data = setup
    report = evaluate([tok_path, "cl100k"], data, EvalConfig())
    ours, gpt4 = report["results"]
    assert gpt4["tokenizer"] == "cl100k" and gpt4["vocab"]["size"] == 100_277
    assert ours["overall"]["bytes"] == gpt4["overall"]["bytes"]
    # a 100k vocabulary compresses English far better than a 700-token one
    assert gpt4["overall"]["bytes_per_token"] > 1.2 * ours["overall"]["bytes_per_token"]
    assert gpt4["vocab"]["unused_share"] > ours["vocab"]["unused_share"]


def test_sample_and_errors(setup):
    tok_path, data = setup
    full = evaluate([tok_path], data, EvalConfig())["results"][0]["overall"]
    assert full["docs"] == 13 and full["bytes"] > 40_000
    small = evaluate([tok_path], data, EvalConfig(max_bytes=20_000))["results"][0]["overall"]
    assert 15_000 < small["bytes"] <= 20_000 and small["docs"] < 13
    with pytest.raises(InputError, match="no column 'language'"):
        evaluate([tok_path], data, EvalConfig(by="language"))


def test_eval_cli(setup):
    tok_path, data = setup
    r = CliRunner().invoke(cli, ["tokenizer", "eval", str(tok_path.parent), str(data), "--by", "source",
                                 "--compare", "cl100k", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    expected = {"cjk"} | {d["source"] for d in demo_docs()[100:110]}
    assert set(report["results"][0]["groups"]) == set(report["results"][1]["groups"]) == expected
    assert "bytes/tok" in r.stderr and "cl100k" in r.stderr
    bad = CliRunner().invoke(cli, ["tokenizer", "eval", str(tok_path), str(data), "--by", "nope"])
    assert bad.exit_code == 2 and "no column" in bad.output


def test_show_brackets_ids_and_json(setup):
    tok_path, _ = setup
    text = "Hello,  world!\n\t12345 中"
    ref = Tokenizer.from_file(str(tok_path)).encode(text, add_special_tokens=False).ids
    r = CliRunner().invoke(cli, ["tokenizer", "show", str(tok_path), text])
    assert r.exit_code == 0, r.output
    body, ids_line = r.stdout.rsplit("ids: ", 1)
    assert [int(x) for x in ids_line.split()] == ref
    assert body.count("[") == len(ref) and "↵]\n" in body and "→" in body and "\\xe4" in body
    j = CliRunner().invoke(cli, ["tokenizer", "show", str(tok_path), "-", "--json"], input=text)
    info = json.loads(j.stdout)
    assert info["ids"] == ref and info["tokens"] == len(ref)
    assert b"".join(bytes.fromhex(p["bytes"]) for p in info["pieces"]) == text.encode()
    c = CliRunner().invoke(cli, ["tokenizer", "show", str(tok_path), "abc def", "--colour"])
    assert "\x1b[" in c.stdout and "[" not in c.stdout.replace("\x1b[", "")


def test_show_missing_tokenizer_exit_2(tmp_path):
    r = CliRunner().invoke(cli, ["tokenizer", "show", str(tmp_path / "no.json"), "x"])
    assert r.exit_code == 2 and "not found" in r.output
