"""The fit loop and the callbacks that record it (history, best epoch, early stopping),
choosing the epoch by translation score, and checkpoints to resume from."""
