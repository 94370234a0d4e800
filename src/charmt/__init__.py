"""charmt: a character-level LSTM sequence-to-sequence English-to-French translator.

In layers by concern (docs/pipeline.md, "The library's layers"), each importing only the ones
below it. Importing the package is cheap: TensorFlow is imported only by the modules that need
it (charmt.models, charmt.training, charmt.inference), so the data stages start fast.
"""

import os

# MLflow 3 sends usage telemetry unless told not to (mlflow/telemetry/utils.py); nothing of a
# team's runs leaves the team. Set before any module imports mlflow; an explicit value wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

__version__ = "0.1.0"
