"""Sentiment of short sentences with an LSTM, next to a bag-of-words baseline.

Trains on the imdb + amazon "Sentiment Labelled Sentences" (1,990 sentences) and reports
accuracy on the yelp sentences (1,000), a domain the model never saw. Both models read the same
vocabulary (ember's TextVectorization, adapted on the training sentences only):

- LSTM: token ids -> Embedding(mask_zero) -> LSTM -> Dense(sigmoid), trained with Adam on binary
  cross-entropy; early stopping on a validation tenth of the (shuffled) training sentences.
- Baseline: scikit-learn's LogisticRegression on the multi-hot bag of words.

Run: ``python examples/sentiment_lstm.py [--data ../shared/data/sentiment] [--epochs 15]``.
Prints one line per model and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import ember as em
from ember import callbacks, layers
from ember.data.text import TextVectorization
from ember.datasets import sentiment_sentences

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EMBER_SENTIMENT_DATA", str(DEFAULT_DATA)))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--max-tokens", type=int, default=5000)
    p.add_argument("--length", type=int, default=40, help="tokens kept per sentence")
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    em.set_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = sentiment_sentences(args.data)
    # shuffle once, so the validation tenth mixes both training sources
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    x_train, y_train = x_train[order], y_train[order]

    vectorize = TextVectorization(max_tokens=args.max_tokens, output_sequence_length=args.length)
    vectorize.adapt(x_train)
    ids_train, ids_test = vectorize(x_train), vectorize(x_test)
    vocab = vectorize.vocabulary_size()

    # --- LSTM
    model = em.Sequential(
        [
            layers.Input((args.length,), dtype="int64"),
            layers.Embedding(vocab, args.embed, mask_zero=True),
            layers.LSTM(args.units),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=em.optimizers.Adam(learning_rate=3e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    t0 = time.perf_counter()
    history = model.fit(
        ids_train,
        y_train.astype(np.float32)[:, None],
        batch_size=32,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[stop],
        verbose=0,
    )
    seconds = time.perf_counter() - t0
    prob = model.predict(ids_test, verbose=0)
    lstm_acc = float(((np.asarray(prob)[:, 0] > 0.5) == y_test).mean())
    epochs_run = len(history.history["loss"])
    print(f"LSTM           yelp accuracy {lstm_acc:.3f}  ({epochs_run} epochs, {seconds:.1f} s)")

    # --- bag-of-words logistic regression (scikit-learn), same vocabulary and split
    from sklearn.linear_model import LogisticRegression

    bow = TextVectorization(output_mode="multi_hot", vocabulary=vectorize.get_vocabulary())
    clf = LogisticRegression(max_iter=2000).fit(bow(x_train), y_train)
    bow_acc = float((clf.predict(bow(x_test)) == y_test).mean())
    print(f"bag-of-words LR yelp accuracy {bow_acc:.3f}")

    print(
        json.dumps(
            {
                "train_sentences": len(x_train),
                "test_sentences": len(x_test),
                "vocabulary": vocab,
                "lstm_yelp_accuracy": round(lstm_acc, 4),
                "bow_logreg_yelp_accuracy": round(bow_acc, 4),
                "lstm_epochs": epochs_run,
                "lstm_train_seconds": round(seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
