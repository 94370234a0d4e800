"""Temporary: today's import path of build_model for charmt.training.fit until its import moves
to charmt.models.architectures (removed in the same series of commits)."""

from charmt.models.architectures import build_model

__all__ = ["build_model"]
