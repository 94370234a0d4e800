"""Text as the model sees it: Unicode NFC, at training and at inference alike.

'é' may arrive as one code point (U+00E9) or as 'e' plus a combining accent (U+0301), as macOS
and many web forms send it; both must be the one character the model was trained on.
"""

import unicodedata


def normalize(text: str) -> str:
    """``text`` in Unicode NFC."""
    return unicodedata.normalize("NFC", text)
