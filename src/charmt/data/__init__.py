"""The sentence pairs: download, parsing and splits, vocabularies, batches."""
