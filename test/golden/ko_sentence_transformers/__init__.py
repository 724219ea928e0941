"""Python reference implementation of the seed project's KoBERT pieces.

Only used to generate golden fixtures (see ../make_golden.py). Importable as
``ko_sentence_transformers`` when ``test/golden`` is on ``sys.path`` so that the module type string
``ko_sentence_transformers.models.KoBertTransformer`` written in ``modules.json`` resolves.
"""
from .tokenization_kobert import KoBertTokenizer

__all__ = ["KoBertTokenizer"]
