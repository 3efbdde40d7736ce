"""Text: standardization, tokenization, Keras's TextVectorization, padding, word vectors.

Conventions follow Keras. ``TextVectorization``'s vocabulary is ``''`` (padding, index 0),
``'[UNK]'`` (out of vocabulary, index 1), then the adapted tokens by descending count, ties
broken by descending token (Keras sorts with ``np.lexsort((tokens, counts))[::-1]``, so of two
equally frequent tokens the one that sorts LATER comes first). ``output_sequence_length`` pads
and truncates at the END; ``pad_sequences`` pads and truncates at the FRONT by default.
"""

from __future__ import annotations

import collections
import gzip
import math
import os
import re
import string

import numpy as np

from ember import backend
from ember.errors import EmberTypeError, EmberValueError, FileFormatError

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
# Keras's DEFAULT_STRIP_REGEX removes exactly the ASCII punctuation characters
_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")

# a small list of English function words for ``stop_words="english"``
ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


def _stop_set(stop_words):
    if stop_words is None:
        return None
    if stop_words == "english":
        return ENGLISH_STOP_WORDS
    if isinstance(stop_words, str):
        raise EmberValueError(
            f"standardize: stop_words must be None, 'english' or a collection of words, "
            f"received {stop_words!r}"
        )
    return frozenset(stop_words)


def _standardize_one(text: str, lowercase: bool, strip_punctuation: bool, stop) -> str:
    if not isinstance(text, str):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        else:
            raise EmberTypeError(f"standardize: expected a string, received {type(text).__name__}")
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = _PUNCT.sub("", text)
    if stop is not None:
        text = " ".join(w for w in text.split() if w not in stop)
    return text


def standardize(text, lowercase: bool = True, strip_punctuation: bool = True, stop_words=None):
    """Normalize a string (or each string of a list/array): lowercase, remove ASCII
    punctuation, and drop ``stop_words`` (None, "english", or a collection of words; the text
    is then re-joined with single spaces). Returns the same structure it was given."""
    stop = _stop_set(stop_words)
    if isinstance(text, (str, bytes)):
        return _standardize_one(text, lowercase, strip_punctuation, stop)
    return [_standardize_one(t, lowercase, strip_punctuation, stop) for t in _as_text_list(text)]


def _split_one(text: str, split):
    if split is None:
        return [text]
    if split == "whitespace":
        return text.split()
    if split == "character":
        return list(text)
    return list(split(text))


def tokenize(text, split="whitespace"):
    """Tokens of a string ("whitespace": runs of whitespace separate tokens; "character":
    every character; or a callable ``split(text) -> tokens``); a list of strings gives a list of
    token lists."""
    if split not in (None, "whitespace", "character") and not callable(split):
        raise EmberValueError(
            f"tokenize: split must be 'whitespace', 'character', None or a callable, "
            f"received {split!r}"
        )
    if isinstance(text, str):
        return _split_one(text, split)
    return [_split_one(t, split) for t in _as_text_list(text)]


def _as_text_list(texts) -> list:
    if hasattr(texts, "data") and not isinstance(texts, np.ndarray):
        texts = texts.data
    if isinstance(texts, np.ndarray):
        if texts.ndim == 2 and texts.shape[1] == 1:
            texts = texts[:, 0]
        if texts.ndim != 1:
            raise EmberValueError(
                f"expected a 1-D batch of strings (or shape (N, 1)), received shape {texts.shape}"
            )
        texts = texts.tolist()
    out = []
    for t in texts:
        if isinstance(t, (list, tuple)) and len(t) == 1:  # Keras's [["text"], ...] batches
            t = t[0]
        if isinstance(t, bytes):
            t = t.decode("utf-8", errors="replace")
        if not isinstance(t, str):
            raise EmberTypeError(f"expected strings, received an item of type {type(t).__name__}")
        out.append(t)
    return out


def _ngrams(tokens: list, widths) -> list:
    if widths is None:
        return tokens
    out = []
    for n in widths:
        out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return out


class TextVectorization:
    """Map strings to token ids (or bag-of-words vectors) with a vocabulary learned by ``adapt``.

    Args:
        max_tokens: the vocabulary's maximum size, counting '' and '[UNK]'; None: no limit.
        standardize: "lower_and_strip_punctuation" (default), "lower", "strip_punctuation",
            None, or a callable ``f(text) -> text``.
        split: "whitespace" (default), "character", None, or a callable ``f(text) -> tokens``.
        ngrams: None, n (all 1..n-grams) or a tuple of widths; n-grams join tokens with " ".
        output_mode: "int" (token ids), "multi_hot", "count" or "tf_idf" (one row of width
            vocabulary_size() per text).
        output_sequence_length: with "int", pad with 0 / truncate every row at the END to this
            length; None pads to the longest text of the batch.
        pad_to_max_tokens: with the vector modes, make rows max_tokens wide.
        vocabulary: a list of tokens (or a path to a file with one per line) instead of adapt.

    Calling it on a list of strings gives an int64 array (N, L) for "int", a float array (N, V)
    otherwise; on one string, a 1-D array.
    """

    MODES = ("int", "multi_hot", "count", "tf_idf")
    STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")

    def __init__(
        self,
        max_tokens=None,
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        ngrams=None,
        output_mode="int",
        output_sequence_length=None,
        pad_to_max_tokens=False,
        vocabulary=None,
    ):
        name = "TextVectorization"
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 3
        ):
            raise EmberValueError(
                f"{name}: max_tokens must be None or an int >= 3 (it counts '' and '[UNK]'), "
                f"received max_tokens={max_tokens!r}"
            )
        if (
            standardize is not None
            and standardize not in self.STANDARDIZE
            and not callable(standardize)
        ):
            raise EmberValueError(
                f"{name}: standardize must be one of {self.STANDARDIZE}, None or a callable, "
                f"received {standardize!r}"
            )
        if split not in (None, "whitespace", "character") and not callable(split):
            raise EmberValueError(
                f"{name}: split must be 'whitespace', 'character', None or a callable, "
                f"received {split!r}"
            )
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in self.MODES:
            raise EmberValueError(
                f"{name}: output_mode must be one of {self.MODES}, received {output_mode!r}"
            )
        if ngrams is not None and not (
            (isinstance(ngrams, int) and ngrams >= 1)
            or (
                isinstance(ngrams, (tuple, list))
                and all(isinstance(n, int) and n >= 1 for n in ngrams)
            )
        ):
            raise EmberValueError(
                f"{name}: ngrams must be None, an int or a tuple of ints, received {ngrams!r}"
            )
        if output_sequence_length is not None:
            if output_mode != "int":
                raise EmberValueError(
                    f"{name}: output_sequence_length is only for output_mode='int'"
                )
            if (
                isinstance(output_sequence_length, bool)
                or not isinstance(output_sequence_length, int)
                or output_sequence_length < 1
            ):
                raise EmberValueError(
                    f"{name}: output_sequence_length must be a positive int, received "
                    f"{output_sequence_length!r}"
                )
        if pad_to_max_tokens and max_tokens is None and output_mode != "int":
            raise EmberValueError(f"{name}: pad_to_max_tokens needs max_tokens")
        self.max_tokens = max_tokens
        self.standardize = standardize
        self.split = split
        self.ngrams = ngrams if not isinstance(ngrams, list) else tuple(ngrams)
        self._widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else self.ngrams
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self._vocab: list = [PAD_TOKEN, OOV_TOKEN]
        self._index: dict = {}
        self._idf = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ------------------------------------------------------------------ text -> tokens
    def _standardize(self, text: str) -> str:
        s = self.standardize
        if s in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()
        if s in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCT.sub("", text)
        if callable(s):
            text = s(text)
        return text

    def tokens(self, text: str) -> list:
        """The tokens (and n-grams) of one text, after standardization."""
        return _ngrams(_split_one(self._standardize(text), self.split), self._widths)

    # ------------------------------------------------------------------ vocabulary
    def adapt(self, data, steps=None) -> None:
        """Learn the vocabulary (and, for "tf_idf", document frequencies) from texts: a list or
        array of strings, or an iterable of such batches."""
        counts: collections.Counter = collections.Counter()
        doc_freq: collections.Counter = collections.Counter()
        n_docs = 0
        for batch in _text_batches(data, steps):
            for text in batch:
                toks = self.tokens(text)
                counts.update(toks)
                doc_freq.update(set(toks))
                n_docs += 1
        counts.pop(PAD_TOKEN, None)
        counts.pop(OOV_TOKEN, None)
        # descending count, ties by descending token: Keras's lexsort((tokens, counts))[::-1]
        ordered = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self.max_tokens is not None:
            ordered = ordered[: self.max_tokens - 2]
        self._set_tokens([t for t, _ in ordered])
        if self.output_mode == "tf_idf":
            idf = np.array([math.log(1.0 + n_docs / (1.0 + doc_freq[t])) for t, _ in ordered])
            oov = idf.mean() if len(idf) else 0.0
            self._idf = np.concatenate([[oov, oov], idf])

    def _set_tokens(self, tokens: list) -> None:
        self._vocab = [PAD_TOKEN, OOV_TOKEN] + list(tokens)
        self._index = {t: i for i, t in enumerate(self._vocab) if i >= 2}

    def set_vocabulary(self, vocabulary, idf_weights=None) -> None:
        """Use this vocabulary (a list, or a text file with one token per line); a leading
        '' and '[UNK]' are optional."""
        if isinstance(vocabulary, (str, os.PathLike)):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n").rstrip("\r") for line in f]
        tokens = [str(t) for t in vocabulary]
        if tokens[:2] == [PAD_TOKEN, OOV_TOKEN]:
            tokens = tokens[2:]
        dup = sorted({t for t in tokens if tokens.count(t) > 1})
        if dup:
            raise EmberValueError(f"TextVectorization: repeated vocabulary tokens {dup[:5]}")
        if PAD_TOKEN in tokens or OOV_TOKEN in tokens:
            raise EmberValueError(
                "TextVectorization: '' and '[UNK]' may only appear first, in that order"
            )
        if self.max_tokens is not None and len(tokens) + 2 > self.max_tokens:
            raise EmberValueError(
                f"TextVectorization: the vocabulary has {len(tokens) + 2} tokens (with '' and "
                f"'[UNK]'), more than max_tokens={self.max_tokens}"
            )
        self._set_tokens(tokens)
        if idf_weights is not None:
            idf = np.asarray(idf_weights, dtype=np.float64)
            if len(idf) == len(tokens):
                idf = np.concatenate([[idf.mean()] * 2, idf])
            self._idf = idf

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        return list(self._vocab) if include_special_tokens else list(self._vocab[2:])

    def vocabulary_size(self) -> int:
        return len(self._vocab)

    # ------------------------------------------------------------------ texts -> arrays
    def _ids(self, text: str) -> list:
        index = self._index
        return [index.get(t, 1) for t in self.tokens(text)]

    def __call__(self, texts):
        single = isinstance(texts, (str, bytes))
        batch = _as_text_list([texts] if single else texts)
        rows = [self._ids(t) for t in batch]
        if self.output_mode == "int":
            length = self.output_sequence_length
            if length is None:
                length = max((len(r) for r in rows), default=0)
            out = np.zeros((len(rows), length), dtype=np.int64)
            for i, r in enumerate(rows):
                r = r[:length]
                out[i, : len(r)] = r
        else:
            width = self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()
            out = np.zeros((len(rows), width), dtype=backend.float_dtype())
            for i, r in enumerate(rows):
                ids, cnt = np.unique(np.asarray(r, dtype=np.int64), return_counts=True)
                out[i, ids] = 1.0 if self.output_mode == "multi_hot" else cnt
            if self.output_mode == "tf_idf":
                if self._idf is None:
                    raise EmberValueError("TextVectorization: tf_idf needs adapt() first")
                idf = np.zeros(width)
                idf[: len(self._idf)] = self._idf
                out *= idf.astype(out.dtype)
        return out[0] if single else out

    def get_config(self) -> dict:
        if callable(self.standardize) or callable(self.split):
            raise EmberValueError(
                "TextVectorization.get_config: a callable standardize/split cannot be saved"
            )
        return {
            "max_tokens": self.max_tokens,
            "standardize": self.standardize,
            "split": self.split,
            "ngrams": list(self.ngrams) if isinstance(self.ngrams, tuple) else self.ngrams,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary": self.get_vocabulary(),
        }

    @classmethod
    def from_config(cls, config: dict) -> TextVectorization:
        return cls(**config)


def _is_text_item(t) -> bool:
    return isinstance(t, (str, bytes)) or (
        isinstance(t, (list, tuple)) and len(t) == 1 and isinstance(t[0], (str, bytes))
    )


def _text_batches(data, steps=None):
    """Batches of strings from a string, a list/array of strings, or an iterable of batches
    (``(texts, labels)`` batches give their texts)."""
    if isinstance(data, (str, bytes)):
        yield _as_text_list([data])
        return
    if isinstance(data, np.ndarray) or (
        isinstance(data, (list, tuple)) and all(_is_text_item(t) for t in data)
    ):
        yield _as_text_list(data)
        return
    for i, batch in enumerate(data):
        if steps is not None and i >= steps:
            break
        if isinstance(batch, tuple) and len(batch) == 2 and not _is_text_item(batch[0]):
            batch = batch[0]
        yield _as_text_list([batch] if isinstance(batch, (str, bytes)) else batch)


# ------------------------------------------------------------------------------- padding
def pad_sequences(
    sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0
) -> np.ndarray:
    """Make sequences the same length (Keras's semantics).

    Args:
        sequences: a list of sequences (lists or arrays; items may themselves be vectors).
        maxlen: the output length; None: the longest sequence's.
        dtype: the output dtype.
        padding: "pre" (default) puts the padding in front, "post" at the end.
        truncating: "pre" (default) drops values from the front of longer sequences, "post"
            from the end.
        value: the padding value.

    Returns an array (len(sequences), maxlen, *item_shape).
    """
    if padding not in ("pre", "post"):
        raise EmberValueError(
            f"pad_sequences: padding must be 'pre' or 'post', received {padding!r}"
        )
    if truncating not in ("pre", "post"):
        raise EmberValueError(
            f"pad_sequences: truncating must be 'pre' or 'post', received {truncating!r}"
        )
    try:
        seqs = list(sequences)
        lengths = [len(s) for s in seqs]
    except TypeError:
        raise EmberTypeError(
            "pad_sequences: expected a list of sequences (lists or arrays)"
        ) from None
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise EmberValueError(f"pad_sequences: maxlen must be an int >= 0, received {maxlen!r}")
    maxlen = int(maxlen)
    item_shape = ()
    for s in seqs:
        if len(s):
            item_shape = np.asarray(s).shape[1:]
            break
    out = np.full((len(seqs), maxlen) + item_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(seqs):
        if not len(s):
            continue
        s = np.asarray(s, dtype=dtype)
        if s.shape[1:] != item_shape:
            raise EmberValueError(
                f"pad_sequences: sequence {i} has items of shape {s.shape[1:]}, expected "
                f"{item_shape} like the first non-empty sequence"
            )
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s) :] = s
    return out


# ------------------------------------------------------------------------------- word vectors
def _open_text(path):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def load_word_vectors(path, vocabulary=None, limit=None, dtype=None) -> dict:
    """Read word vectors in GloVe's text format (``word v1 v2 ...`` per line) or word2vec's
    text format (the same after a ``count dim`` header line); ``.gz`` files too.

    Args:
        path: the file.
        vocabulary: if given, keep only these words (saves memory with large files).
        limit: read at most this many vectors.
        dtype: the vectors' dtype (default floatx).

    Returns ``{word: vector}``. Raises ``FileFormatError`` naming the file and line when a line
    does not fit (a wrong number of values, a value that is not a number).
    """
    dtype = np.dtype(dtype) if dtype is not None else backend.float_dtype()
    keep = None if vocabulary is None else set(vocabulary)
    vectors: dict = {}
    dim = None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EmberValueError(f"load_word_vectors: no file at {path!r}")
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip().split(" ")
            if not parts or parts == [""]:
                continue
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # word2vec header: count dim
                continue
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise FileFormatError(
                        f"load_word_vectors: {path!r} line {lineno} holds no vector"
                    )
            if len(parts) < dim + 1:
                raise FileFormatError(
                    f"load_word_vectors: {path!r} line {lineno} has {len(parts) - 1} values, "
                    f"expected {dim}"
                )
            word = " ".join(parts[: len(parts) - dim])  # a few GloVe words contain spaces
            if keep is not None and word not in keep:
                continue
            try:
                vec = np.asarray(parts[len(parts) - dim :], dtype=np.float64).astype(dtype)
            except ValueError:
                raise FileFormatError(
                    f"load_word_vectors: {path!r} line {lineno} has a value that is not a number"
                ) from None
            vectors[word] = vec
            if limit is not None and len(vectors) >= limit:
                break
    if not vectors and keep is None:
        raise FileFormatError(f"load_word_vectors: no vectors found in {path!r}")
    return vectors


def embedding_matrix(
    vocabulary, vectors, oov: str = "zeros", lowercase_fallback: bool = True, seed=None
) -> np.ndarray:
    """A weight matrix for ``layers.Embedding``: row i holds the vector of vocabulary token i.

    Args:
        vocabulary: a list of tokens (index = row), a ``TextVectorization``, or a dict
            ``{token: index}``.
        vectors: ``{word: vector}`` (from ``load_word_vectors``), or a path to such a file.
        oov: rows of tokens without a vector: "zeros", or "random" (normal, with the mean and
            std of the known vectors). The padding token '' always gets zeros.
        lowercase_fallback: look a token up in lowercase when it is missing as written.
        seed: for oov="random".

    Returns a floatx array (vocabulary size, dim); ``ember.data.text.coverage(...)`` tells how
    many tokens were found.
    """
    if isinstance(vectors, (str, os.PathLike)):
        vectors = load_word_vectors(vectors)
    tokens = _vocab_list(vocabulary)
    if not vectors:
        raise EmberValueError("embedding_matrix: vectors is empty")
    dim = len(next(iter(vectors.values())))
    if oov not in ("zeros", "random"):
        raise EmberValueError(
            f"embedding_matrix: oov must be 'zeros' or 'random', received {oov!r}"
        )
    out = np.zeros((len(tokens), dim), dtype=backend.float_dtype())
    missing = []
    for i, t in enumerate(tokens):
        v = vectors.get(t)
        if v is None and lowercase_fallback:
            v = vectors.get(t.lower())
        if v is not None:
            if len(v) != dim:
                raise EmberValueError(
                    f"embedding_matrix: the vector of {t!r} has {len(v)} values, expected {dim}"
                )
            out[i] = v
        elif t != PAD_TOKEN:
            missing.append(i)
    if oov == "random" and missing:
        known = np.stack(list(vectors.values())).astype(np.float64)
        rng = np.random.default_rng(seed) if seed is not None else backend.rng()
        out[missing] = rng.normal(known.mean(), known.std(), (len(missing), dim))
    return out


def coverage(vocabulary, vectors, lowercase_fallback: bool = True) -> float:
    """The fraction of vocabulary tokens (besides '' and '[UNK]') that have a vector."""
    tokens = [t for t in _vocab_list(vocabulary) if t not in (PAD_TOKEN, OOV_TOKEN)]
    if not tokens:
        return 0.0
    hit = sum(1 for t in tokens if t in vectors or (lowercase_fallback and t.lower() in vectors))
    return hit / len(tokens)


def _vocab_list(vocabulary) -> list:
    if isinstance(vocabulary, TextVectorization):
        return vocabulary.get_vocabulary()
    if isinstance(vocabulary, dict):
        tokens = [None] * (max(vocabulary.values()) + 1)
        for t, i in vocabulary.items():
            tokens[i] = t
        return [PAD_TOKEN if t is None else t for t in tokens]
    return [str(t) for t in vocabulary]
