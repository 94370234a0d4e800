"""Scores of translations, and scoring a split."""
