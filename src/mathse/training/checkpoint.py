"""A training job's resumable state, beside its output folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from mathse.artifacts import write_atomic

log = logging.getLogger(__name__)


class Checkpoint:
    """A resumable training state beside the output folder, valid only for the same inputs and settings."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self.path = folder / "state.pt"

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:  # weights_only: tensors and plain containers only, never arbitrary pickled objects
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - an unreadable or unsafe checkpoint is ignored, not trusted
            log.warning("ignoring checkpoint %s: it does not load as plain tensors (%s)", self.path, type(err).__name__)
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            log.info("ignoring checkpoint %s: it was made from other inputs or settings", self.path)
            return None
        return state

    def save(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda tmp: torch.save({**state, "key": self.key}, tmp))
        log.info("checkpoint at step %d saved to %s", state["step"], self.path)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
