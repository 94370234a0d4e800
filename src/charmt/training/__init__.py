"""The fit loop, choosing the best epoch, and checkpoints."""
