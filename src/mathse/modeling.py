"""Loading a backbone (base or trained) and turning problems into model inputs.

The same `from_pretrained` code loads the locally made tiny model and a real Qwen2-VL / Qwen2.5-VL (or any
AutoModelForImageTextToText) checkpoint from a local folder. A round's `adapter/` folder holds either a
peft LoRA adapter (adapter_config.json) over the base model, or full weights (config.json).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from mathse.prompts import solver_prompt

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TRAINED_MARKER = "mathse_train.json"


def setup_torch(threads: int | None = None) -> None:
    """Single-process CPU defaults: the rule's thread budget and deterministic kernels where available."""
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_processor(path: str, min_pixels: int | None = None, max_pixels: int | None = None):
    from transformers import AutoProcessor

    if not Path(path).is_dir():
        raise FileNotFoundError(f"model.path {path!r} is not a folder with a Hugging Face checkpoint")
    kwargs = {}
    if min_pixels is not None:
        kwargs["min_pixels"] = min_pixels
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    processor = AutoProcessor.from_pretrained(path, **kwargs)
    return processor


def default_device() -> torch.device:
    """This process's GPU when there is one (its LOCAL_RANK under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_model(base_path: str, weights: str | None = None, dtype: str = "float32", trainable: bool = False):
    """Load the base model, or the trained weights of a round (`weights` = a round's adapter folder).

    For generation a LoRA adapter is merged into the base weights; for training it stays a PeftModel.
    """
    from transformers import AutoModelForImageTextToText

    # Straight onto this process's device: several training processes on one node would otherwise each hold
    # a whole float32 copy in host memory first.
    load = dict(dtype=DTYPES[dtype], device_map={"": default_device()})
    if weights is None:
        model = AutoModelForImageTextToText.from_pretrained(base_path, **load)
    elif (Path(weights) / "adapter_config.json").exists():
        from peft import PeftModel

        base = AutoModelForImageTextToText.from_pretrained(base_path, **load)
        model = PeftModel.from_pretrained(base, weights, is_trainable=trainable)
        if not trainable:
            model = model.merge_and_unload()
    elif (Path(weights) / "config.json").exists():
        model = AutoModelForImageTextToText.from_pretrained(weights, **load)
    else:
        raise FileNotFoundError(f"{weights}: neither a peft adapter nor full weights")
    model.train(trainable)
    return model


@lru_cache(maxsize=100_000)
def load_image(path: str) -> Image.Image:
    """Decode an image once per process (k samples and every batch reuse it)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path!r}: {err}") from None


def user_message(question: str, n_images: int, prompt_version: str) -> dict:
    content = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": solver_prompt(question, prompt_version)})
    return {"role": "user", "content": content}


def prompt_text(processor, question: str, n_images: int, prompt_version: str) -> str:
    messages = [user_message(question, n_images, prompt_version)]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_text(processor, text: str, n_images: int) -> str:
    """A user turn with the images and a ready-made text (a judge's or teacher's prompt)."""
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def write_marker(folder: str | Path, info: dict) -> None:
    (Path(folder) / TRAINED_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
