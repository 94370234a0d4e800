"""charmt: a character-level LSTM sequence-to-sequence English-to-French translator.

Importing the package is cheap: TensorFlow is imported only by the modules that need it
(``model``, ``training``, ``decoding``), so the data stages start fast.
"""

__version__ = "0.1.0"
