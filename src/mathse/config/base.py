"""The base of every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # Validation errors never echo inputs (a value given for api_key_env may be a pasted key); load_config
    # shows the others itself.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
