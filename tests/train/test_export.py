"""``export hf``: the exported directory loads in transformers and gives the same logits."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from click.testing import CliRunner
from safetensors.torch import load_file

from gristmill.cli import cli
from gristmill.train.export import export_hf, hf_name
from gristmill.train.run import load_run
from tests.train.tiny_run import cached_tiny_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parameter_names_map_onto_llama():
    assert hf_name("embed_tokens.weight") == "model.embed_tokens.weight"
    assert hf_name("layers.3.attn.q_proj.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert hf_name("layers.0.attn_norm.weight") == "model.layers.0.input_layernorm.weight"
    assert hf_name("layers.10.mlp_norm.weight") == "model.layers.10.post_attention_layernorm.weight"
    assert hf_name("layers.1.mlp.gate_proj.weight") == "model.layers.1.mlp.gate_proj.weight"
    assert hf_name("norm.weight") == "model.norm.weight"
    assert hf_name("lm_head.weight") == "lm_head.weight"


@pytest.mark.parametrize("tie, n_kv_head", [(True, None), (False, 2)], ids=["tied", "untied-gqa"])
def test_transformers_logits_match(tmp_path, tie, n_kv_head):
    run_dir = cached_tiny_run(steps=20, tie_embeddings=tie, n_kv_head=n_kv_head)
    out = tmp_path / "hf"
    result = export_hf(run_dir, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(result.files)
    run = load_run(run_dir)

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert type(hf_model).__name__ == "LlamaForCausalLM"
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    text = "And God said, Let there be light: and there was light. O Romeo, Romeo!"
    ids = hf_tok(text)["input_ids"]
    assert ids == run.encode(text)  # same tokenization, nothing added
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.eos_token_id == run.eos_id
    assert hf_model.num_parameters() == run.model.num_params()

    x = torch.tensor([ids])
    with torch.no_grad():
        ours, _ = run.model(x)
        theirs = hf_model(x).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)

    # greedy generation in transformers continues exactly like gristmill's
    from gristmill.train.generate import SamplingConfig, generate
    cfg = SamplingConfig(temperature=0, max_new_tokens=12, stop_at_eos=False)
    mine = generate(run.model, ids, cfg, eos_id=run.eos_id).token_ids
    with torch.no_grad():
        gen = hf_model.generate(x, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=run.eos_id)
    assert gen[0, len(ids):].tolist() == mine


def test_cli_export_refuses_nonempty_output_and_writes_config(tmp_path):
    run_dir = cached_tiny_run(steps=20)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    runner = CliRunner()
    refused = runner.invoke(cli, ["export", "hf", str(run_dir), "-o", str(out)])
    assert refused.exit_code == 2 and "not empty" in refused.output
    forced = runner.invoke(cli, ["export", "hf", str(run_dir), "-o", str(out), "--force"])
    assert forced.exit_code == 2 and "not an export (keep.txt)" in forced.output  # --force: earlier exports only
    assert (out / "keep.txt").read_text() == "x"
    (out / "keep.txt").unlink()
    assert runner.invoke(cli, ["export", "hf", str(run_dir), "-o", str(out)]).exit_code == 0
    ok = runner.invoke(cli, ["export", "hf", str(run_dir), "-o", str(out), "--force", "--json"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["output"] == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 64
    half = runner.invoke(cli, ["export", "hf", str(run_dir), "-o", str(tmp_path / "bf16"), "--dtype", "bfloat16"])
    assert half.exit_code == 0, half.output
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert {t.dtype for t in load_file(str(tmp_path / "bf16" / "model.safetensors")).values()} == {torch.bfloat16}
    missing = runner.invoke(cli, ["export", "hf", str(tmp_path / "nope"), "-o", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "run directory not found" in missing.output
