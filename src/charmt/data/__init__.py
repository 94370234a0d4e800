"""The sentence pairs: download, parsing, splits, the prepared files, references, statistics,
vocabularies, batches."""
