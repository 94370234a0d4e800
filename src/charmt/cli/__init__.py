"""The ``charmt`` command: translate, ui, and its console output."""
