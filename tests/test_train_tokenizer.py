"""The offline CLIP tokenizer equals CLIP's (open_clip's SimpleTokenizer ids)."""

from __future__ import annotations

import open_clip
import torch

from t2p_utils.train.tokenizer import offline_clip_tokenizer

PROMPTS = [
    "Turn it into a drawing of a red cat with a yellow belly, blue eyes and pink tail.",
    "",
    "Pikachu's <unk> tail: 123 héllo   WORLD!!",
    "grey-ish violet crimson turquoise",
]


def test_ids_match_open_clip() -> None:
    tok = offline_clip_tokenizer()
    ours = tok(PROMPTS, max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids
    ref = open_clip.get_tokenizer("ViT-L-14")(PROMPTS)  # pads with 0, we pad with <|endoftext|> like SD
    assert ours.shape == ref.shape == (len(PROMPTS), 77)
    for a, b in zip(ours, ref):
        end = int((b == 49407).nonzero()[0]) + 1  # up to and including the end token
        assert torch.equal(a[:end], b[:end])
        assert (a[end:] == 49407).all()
    assert ours[0, 0] == 49406 and ours[1, :2].tolist() == [49406, 49407]


def test_sizes_and_special_tokens() -> None:
    tok = offline_clip_tokenizer()
    assert len(tok) == 49408
    assert tok.model_max_length == 77
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    assert tok.decode(tok("a red cat").input_ids, skip_special_tokens=True) == "a red cat"
