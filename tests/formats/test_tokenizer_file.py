"""The one tokenizer-file loader: what the shard writer and a trained run both read."""

from __future__ import annotations

import hashlib
import json

import pytest

from gristmill.errors import InputError
from gristmill.formats.tokenizer_file import EOS_TOKEN, read_tokenizer_file
from gristmill.tokenize.encoder import load_encoder


def test_reads_tokenizer_eos_and_sha256(tokenizer_json):
    f = read_tokenizer_file(tokenizer_json)
    assert f.tokenizer.id_to_token(f.eos_id) == EOS_TOKEN
    assert f.sha256 == hashlib.sha256(tokenizer_json.read_bytes()).hexdigest()
    enc = load_encoder(tokenizer_json, fast=False)  # the shard writer's loader agrees
    assert (enc.eos_id, enc.sha256) == (f.eos_id, f.sha256)


def test_an_ordinary_endoftext_token_is_not_an_eos(tokenizer_json, tmp_path):
    # A document could spell an ordinary token; only a special one separates documents.
    spec = json.loads(tokenizer_json.read_text())
    for t in spec["added_tokens"]:
        t["special"] = False
    path = tmp_path / "t.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(InputError, match=r"t\.json: the tokenizer has no <\|endoftext\|> special token"):
        read_tokenizer_file(path)


@pytest.mark.parametrize("content,message", [(None, "tokenizer file not found"),
                                             (b"{not json", "not a tokenizers JSON file"),
                                             (b"\xff\xfe", "not a tokenizers JSON file")])
def test_unfit_files_are_one_input_error(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_tokenizer_file(path)
