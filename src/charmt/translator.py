"""Where ``Translator`` was imported from before the layered layout, for the models logged then.

A translator logged to MLflow before the move (charmt/pyfunc.py, model-from-code) imports
``charmt.translator.Translator`` when it loads. In a fresh process it finds the charmt copy it
carries (``code_paths``); in a process that has already imported this charmt (the evaluate stage
re-scoring an older champion) the name must resolve here. New code imports
``charmt.inference.translator``; import-linter forbids anything else in charmt to import this.
"""

from charmt.inference.translator import Translator

__all__ = ["Translator"]
