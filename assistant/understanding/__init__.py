"""Understanding utterances without the reasoning model: the fast path and its helpers."""
