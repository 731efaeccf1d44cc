"""FSDP for training in several processes: weights, gradients and optimiser state sharded across them.

`train.distributed: fsdp` (torch FSDP2, `fully_shard`) is what lets a 7B model be fully fine-tuned on GPUs
that cannot each hold its AdamW state (16 bytes a parameter in float32). Each decoder layer of the language
model is one unit, all-gathered just before its forward and backward and freed after; everything else (the
embeddings, the head, the vision tower) is the root unit, gathered for the whole forward pass. The vision
tower stays in the root on purpose: a pass without images skips it, and a separate unit would then be
gathered on some processes and not on others, which breaks the collectives. For the same reason every
trainable root parameter gets a (zero) gradient on every pass (`with_root_gradients`): FSDP reduce-scatters
only the parameters that have gradients, so the processes must agree on which do.

The state helpers gather full (unsharded) tensors on process 0 for the saved weights and the mid-round
checkpoint, so both have the same format as a single process's and a round can resume on another GPU count.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def shard(model: nn.Module, device: torch.device) -> list[str]:
    """Shard `model` in place over the default process group (one unit per language-model decoder layer).

    Returns the names of the trainable parameters left in the root unit, for `with_root_gradients`.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    layer_types = set(getattr(base, "_no_split_modules", None) or [])
    decoder = base.get_decoder()
    units = [m for m in decoder.modules() if type(m).__name__ in layer_types]
    if not units:
        raise ValueError(f"{type(base).__name__}: no decoder layers ({sorted(layer_types)}) to shard with FSDP")
    in_units = {id(p) for unit in units for p in unit.parameters()}
    root = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_units]
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    log.info("FSDP: %d decoder layers and the rest of the model sharded across %d processes", len(units), mesh.size())
    return root


def with_root_gradients(loss: torch.Tensor, model: nn.Module, root: list[str]) -> torch.Tensor:
    """`loss` plus zero times every trainable root parameter, so that each gets a gradient on this pass.

    Called after the forward pass, while the root unit is still gathered (FSDP keeps the root's parameters
    unsharded from forward to backward), so the sum is over whole local tensors.
    """
    return loss + 0.0 * sum(model.get_parameter(n).sum() for n in root)


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight, unsharded, on the CPU of process 0 (an empty dict elsewhere); all processes must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    weights = get_model_state_dict(model, options=_options(cpu_offload=True))
    # Tied weights (an lm_head sharing the embedding) come back as separate copies that save_pretrained would
    # write twice: keep the first name of each shared tensor, as a single process's save does.
    seen: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            weights.pop(name, None)
        seen.add(id(tensor))
    return weights


def full_trainable_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(trainable weights, optimiser state), unsharded on process 0; all processes must call it."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_options(cpu_offload=True, ignore_frozen_params=True))


def load_full_trainable_state(model: nn.Module, optimizer: torch.optim.Optimizer, params: dict, optim: dict) -> None:
    """Load what full_trainable_state saved into the sharded model and its optimiser, on every process."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(model, optimizer, model_state_dict=params, optim_state_dict=optim, options=_options(strict=False))


def local_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of weights, gradients and optimiser state this process holds (its shards under FSDP)."""

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t

    tensors = [local(p) for p in model.parameters()]
    tensors += [local(p.grad) for p in model.parameters() if p.grad is not None]
    tensors += [local(v) for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)
