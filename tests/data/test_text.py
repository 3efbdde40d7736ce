"""ember.data.text: standardization, TextVectorization pinned to Keras's published examples and
vocabulary order, pad_sequences pinned to Keras's documented outputs, word-vector files."""

import gzip
import math

import numpy as np
import pytest

from ember.data.text import (
    TextVectorization,
    coverage,
    embedding_matrix,
    load_word_vectors,
    pad_sequences,
    standardize,
    tokenize,
)
from ember.errors import EmberValueError, FileFormatError


# ---------------------------------------------------------------------------------- standardize
def test_standardize_lowercases_and_strips_ascii_punctuation():
    assert standardize("Hello, World! It's 9:30 (ok)?") == "hello world its 930 ok"


def test_standardize_removes_stop_words_and_keeps_list_structure():
    out = standardize(["The cat sat ON the mat", "A dog"], stop_words={"the", "on", "a"})
    assert out == ["cat sat mat", "dog"]
    assert standardize("this is not good", stop_words="english") == "good"


def test_standardize_can_keep_case_and_punctuation():
    assert standardize("Hi, You", lowercase=False, strip_punctuation=False) == "Hi, You"


def test_tokenize_whitespace_and_characters():
    assert tokenize("a  b\tc\n") == ["a", "b", "c"]
    assert tokenize("ab c", split="character") == ["a", "b", " ", "c"]
    assert tokenize(["x y", "z"]) == [["x", "y"], ["z"]]


# ---------------------------------------------------------------------------------- vocabulary
def test_text_vectorization_reproduces_keras_docstring_example():
    # keras.layers.TextVectorization's documented example and output
    layer = TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    out = layer([["foo qux bar"], ["qux baz"]])
    np.testing.assert_array_equal(out, [[4, 1, 3, 0], [1, 2, 0, 0]])
    assert out.dtype == np.int64


def test_vocabulary_is_pad_unk_then_by_count_with_ties_in_descending_token_order():
    layer = TextVectorization()
    layer.adapt(["b a c", "a b", "d a", "E"])
    # a: 3, b: 2, then c, d, e once each: equal counts go later-sorting token first
    assert layer.get_vocabulary() == ["", "[UNK]", "a", "b", "e", "d", "c"]
    assert layer.get_vocabulary(include_special_tokens=False) == ["a", "b", "e", "d", "c"]
    assert layer.vocabulary_size() == 7


def test_given_vocabulary_follows_keras_docstring_example():
    layer = TextVectorization(
        vocabulary=["earth", "wind", "and", "fire"], output_sequence_length=4
    )
    assert layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]
    np.testing.assert_array_equal(layer(["Wind and rain"]), [[3, 4, 1, 0]])


def test_max_tokens_counts_the_special_tokens_and_keeps_the_most_frequent():
    layer = TextVectorization(max_tokens=4)
    layer.adapt(["x x x y y z"])
    assert layer.get_vocabulary() == ["", "[UNK]", "x", "y"]
    np.testing.assert_array_equal(layer("z y"), [1, 3])


def test_output_sequence_length_pads_and_truncates_at_the_end():
    layer = TextVectorization(output_sequence_length=3, vocabulary=list("abcde"))
    np.testing.assert_array_equal(layer(["a b c d e", "b"]), [[2, 3, 4], [3, 0, 0]])


def test_without_output_sequence_length_the_batch_pads_to_its_longest_text():
    layer = TextVectorization(vocabulary=list("abc"))
    np.testing.assert_array_equal(layer(["a", "c b a"]), [[2, 0, 0], [4, 3, 2]])


def test_ngrams_add_joined_pairs_after_the_single_tokens():
    layer = TextVectorization(ngrams=2)
    assert layer.tokens("The cat sat") == ["the", "cat", "sat", "the cat", "cat sat"]


def test_multi_hot_count_and_tf_idf_rows():
    texts = ["a a b", "b c", "a"]
    counts = TextVectorization(output_mode="count")
    counts.adapt(texts)
    vocab = counts.get_vocabulary()
    assert vocab == ["", "[UNK]", "a", "b", "c"]
    np.testing.assert_array_equal(counts(["a a b", "zz"]), [[0, 0, 2, 1, 0], [0, 1, 0, 0, 0]])
    hot = TextVectorization(output_mode="multi_hot", vocabulary=vocab[2:])
    np.testing.assert_array_equal(hot(["a a b"]), [[0, 0, 1, 1, 0]])
    tfidf = TextVectorization(output_mode="tf_idf")
    tfidf.adapt(texts)
    # idf = log(1 + n_docs / (1 + document frequency)); a is in 2 of 3 documents
    idf_a, idf_b = math.log(1 + 3 / 3), math.log(1 + 3 / 3)
    np.testing.assert_allclose(tfidf(["a a b"])[0, 2:4], [2 * idf_a, idf_b], rtol=1e-6)


def test_text_vectorization_config_round_trip():
    layer = TextVectorization(max_tokens=10, output_sequence_length=5)
    layer.adapt(["one two two three"])
    clone = TextVectorization.from_config(layer.get_config())
    np.testing.assert_array_equal(layer(["two one four"]), clone(["two one four"]))


def test_text_vectorization_rejects_bad_arguments():
    with pytest.raises(EmberValueError, match="output_mode"):
        TextVectorization(output_mode="words")
    with pytest.raises(EmberValueError, match="output_sequence_length"):
        TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(EmberValueError, match="repeated"):
        TextVectorization(vocabulary=["a", "a"])


# ---------------------------------------------------------------------------------- padding
def test_pad_sequences_matches_keras_documented_outputs():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(
        pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    )
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_pad_sequences_truncating_post_keeps_the_front():
    out = pad_sequences([[4, 5, 6], [7]], maxlen=2, truncating="post", padding="post")
    np.testing.assert_array_equal(out, [[4, 5], [7, 0]])
    assert out.dtype == np.int32


def test_pad_sequences_handles_empty_sequences_items_and_dtypes():
    out = pad_sequences([[], [[1.5, 2.0]]], dtype="float32", value=9.0)
    assert out.shape == (2, 1, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[9.0, 9.0]], [[1.5, 2.0]]])
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)


def test_pad_sequences_rejects_unknown_modes():
    with pytest.raises(EmberValueError, match="padding"):
        pad_sequences([[1]], padding="middle")


# ---------------------------------------------------------------------------------- vectors
def test_load_glove_and_word2vec_text_formats(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2 0.3\ncat -1 0 1.5\n")
    w2v = tmp_path / "w2v.txt.gz"
    with gzip.open(w2v, "wt", encoding="utf-8") as f:
        f.write("2 3\nthe 0.1 0.2 0.3\ncat -1 0 1.5\n")
    for path in (glove, w2v):
        vec = load_word_vectors(path)
        assert sorted(vec) == ["cat", "the"]
        np.testing.assert_allclose(vec["cat"], [-1, 0, 1.5])
        assert vec["the"].dtype == np.float32


def test_load_word_vectors_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2\nb 1\n")
    with pytest.raises(FileFormatError, match="line 2 has 1 values, expected 2"):
        load_word_vectors(path)
    path.write_text("a 1 2\nb 1 x\n")
    with pytest.raises(FileFormatError, match="line 2"):
        load_word_vectors(path)


def test_load_word_vectors_keeps_only_the_asked_vocabulary(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a 1\nb 2\nc 3\n")
    assert sorted(load_word_vectors(path, vocabulary=["c", "a"])) == ["a", "c"]


def test_embedding_matrix_rows_follow_the_vocabulary():
    vectors = {"cat": np.array([1.0, 2.0]), "dog": np.array([3.0, 4.0])}
    layer = TextVectorization(vocabulary=["cat", "Dog", "emu"])
    m = embedding_matrix(layer, vectors)
    np.testing.assert_array_equal(m, [[0, 0], [0, 0], [1, 2], [3, 4], [0, 0]])
    assert m.dtype == np.float32
    assert coverage(layer, vectors) == pytest.approx(2 / 3)
    rnd = embedding_matrix(["", "[UNK]", "emu"], vectors, oov="random", seed=0)
    np.testing.assert_array_equal(rnd[0], [0, 0])
    assert np.all(rnd[2] != 0)
