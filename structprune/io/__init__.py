"""Saving and loading pruned models as plain data (loads with ``torch.load(weights_only=True)``)."""

from structprune.io.checkpoint import load, load_state_dict, save, state_dict

__all__ = ["load", "load_state_dict", "save", "state_dict"]
