"""Decoding and the Translator that turns sentences into translations."""
