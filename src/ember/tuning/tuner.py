"""The tuner: a thin layer over an Optuna study.

One trial is: ask the study for parameters (``space.suggest``), seed ember, ``build_model(params)``
(a compiled Model), ``model.fit(x, y, **fit_kwargs)`` with a callback that reports the objective
after every epoch (``trial.report`` / ``trial.should_prune``, so Optuna's pruner can stop a bad
trial early), then hand the objective back to the study. Optuna does the rest: the samplers
(grid, random, TPE, Gaussian process), the pruners, and the storage that lets several processes
share one study and a killed search resume.

What this layer adds on top:

- ``max_trials`` is a budget for the whole *study*: trials of other workers and of earlier
  sessions count, so a resumed search runs only what is left and two workers run N trials in
  total, not N each. A worker that asks for one trial too many (two workers racing for the last
  slot) records it as a "surplus" failure without running it; it is left out of ``results``.
- A trial whose ``build_model`` or ``fit`` raises, or whose objective is NaN, is recorded as
  failed (its error is kept) and the search goes on.
- A trial that was interrupted (its worker was killed: Optuna's heartbeat notices; or Ctrl+C)
  is run again with the same parameters and seed, and does not count against the budget.
"""

from __future__ import annotations

import csv
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from ember.callbacks import Callback
from ember.errors import EmberTypeError, EmberValueError
from ember.tuning.space import SearchSpace

_COUNTED = ("COMPLETE", "PRUNED", "RUNNING")

# A running trial that has not recorded its seed (the first thing a trial does) this many
# seconds after it started belongs to a worker that died while starting it. Optuna's heartbeat
# cannot tell: a worker killed before its heartbeat thread's first beat leaves a trial that is
# never stale, and a study whose budget it fills would wait for it forever (seen in CI).
_START_GRACE_S = 30.0


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optional extra
        raise ImportError("ember.tuning needs Optuna: pip install 'ember[tune]'") from None
    return optuna


@contextmanager
def _quiet_experimental():
    """Optuna flags heartbeats, BruteForceSampler, ... as experimental; we use them knowingly."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextmanager
def _optuna_log(verbose: int):
    """Optuna logs every trial at INFO; ember prints its own line, so show Optuna's log only
    with verbose >= 2 (and restore the level after, it is global)."""
    logging = _optuna().logging
    old = logging.get_verbosity()
    logging.set_verbosity(logging.INFO if verbose >= 2 else logging.ERROR)
    try:
        yield
    finally:
        logging.set_verbosity(old)


def _derive_seed(*ints: int) -> int:
    """A 32-bit seed from a tuple of non-negative ints (NumPy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(1)[0])


class _TrialFailed(Exception):
    """The trial's own code failed (or gave NaN): record it and go on with the search."""


class _Surplus(_TrialFailed):
    """The budget was already full when this trial started (another worker took the slot)."""


class TrialCallback(Callback):
    """The ember callback that ties ``fit`` to an Optuna trial.

    After every epoch it reads ``logs[monitor]``, reports it with ``trial.report(value, epoch)``
    and, when ``trial.should_prune()`` says so, sets ``model.stop_training`` (the tuner then
    marks the trial pruned). A NaN value stops training at once. With ``keep_best_weights`` it
    keeps a copy of the weights of the best epoch so far.

    Args:
        trial: an ``optuna.trial.Trial`` (None: record only, no reporting).
        monitor: the log key to report (the tuner's objective).
        direction: "min" or "max" (for ``keep_best_weights``).
        keep_best_weights: keep ``get_weights()`` of the best epoch in ``best_weights``.
    """

    def __init__(self, trial, monitor: str, direction: str = "min", keep_best_weights=False):
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.direction = direction
        self.keep_best_weights = keep_best_weights
        self.values: list[float] = []
        self.epochs = 0
        self.keys: set[str] = set()
        self.pruned_at: int | None = None
        self.nan_at: int | None = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epochs += 1
        self.keys.update(logs)
        if self.monitor not in logs:
            return  # e.g. validation_freq > 1: no val_ keys this epoch
        value = float(logs[self.monitor])
        if math.isnan(value):
            self.nan_at = epoch
            self.model.stop_training = True  # nothing good comes after a NaN
            return
        better = not self.values or (
            value < min(self.values) if self.direction == "min" else value > max(self.values)
        )
        self.values.append(value)
        if self.keep_best_weights and better:
            self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
        if self.trial is not None:
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch
                self.model.stop_training = True


class Tuner:
    """The base of ``GridSearch``, ``RandomSearch`` and ``BayesianOptimization``: same interface,
    a different Optuna sampler.

    Args:
        build_model: ``build_model(params) -> compiled Model``; ``params`` holds one value per
            active parameter of the space.
        space: a ``SearchSpace`` or ``{name: Choice | Int | Float | list | constant}``.
        objective: the log key to optimize: "val_loss", "val_accuracy", "loss", any metric.
        max_trials: the number of trials in the study (other workers' and earlier sessions'
            trials count; a resumed search runs only what is left).
        seed: seeds the sampler and each trial's model (trial n's ember seed is derived from
            (seed, n), so a trial reproduces). With a shared ``storage`` each worker process
            also mixes its process id into the sampler's seed, so two workers never propose the
            same sequence.
        storage: None (in memory), a database URL such as "sqlite:///study.db" (shared by
            workers, resumable), or an ``optuna.storages`` object.
        direction: "auto" (from the name, as Keras: losses are minimized, accuracy-like
            metrics maximized), "min" or "max".
        study_name: the study's name in the storage (default "ember-tuning").
        pruner: "median" (Optuna's MedianPruner, the default), "hyperband", None / "none", or
            an ``optuna.pruners`` object.
        objective_epoch: "last" (the value after the last epoch, default) or "best" (the best
            epoch's value, as KerasTuner; the kept best model then has that epoch's weights).
        heartbeat_interval: seconds between a running trial's heartbeats in a database
            storage; a trial silent for twice as long belongs to a dead worker and is run
            again. None turns heartbeats off.
        verbose: 0 silent, 1 a line per trial (default), 2 also Optuna's own log.
    """

    method = "custom"

    def __init__(
        self,
        build_model: Callable[[dict], Any],
        space,
        objective: str = "val_loss",
        max_trials: int | None = 10,
        seed: int | None = None,
        storage=None,
        *,
        direction: str = "auto",
        study_name: str | None = None,
        pruner="median",
        objective_epoch: str = "last",
        heartbeat_interval: int | None = 10,
        verbose: int = 1,
    ):
        who = type(self).__name__
        if not callable(build_model):
            raise EmberTypeError(
                f"{who}: build_model must be a function params -> compiled Model, received "
                f"{type(build_model).__name__}"
            )
        self.build_model = build_model
        self.space = SearchSpace(space)
        if not isinstance(objective, str) or not objective:
            raise EmberTypeError(
                f"{who}: objective must be a log key such as 'val_loss', received {objective!r}"
            )
        self.objective = objective
        if max_trials is not None and (
            isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1
        ):
            raise EmberValueError(
                f"{who}: max_trials must be an int >= 1, received {max_trials!r}"
            )
        self.max_trials = max_trials
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise EmberValueError(f"{who}: seed must be None or an int >= 0, received {seed!r}")
        self.seed = seed
        from ember.callbacks import monitor_direction

        aliases = {"minimize": "min", "maximize": "max"}
        try:
            self.direction = monitor_direction(objective, aliases.get(direction, direction))
        except EmberValueError:
            raise EmberValueError(
                f"{who}: direction must be 'auto', 'min' or 'max', received {direction!r}"
            ) from None
        if objective_epoch not in ("last", "best"):
            raise EmberValueError(
                f"{who}: objective_epoch must be 'last' or 'best', received {objective_epoch!r}"
            )
        self.objective_epoch = objective_epoch
        if heartbeat_interval is not None and (
            not isinstance(heartbeat_interval, int) or heartbeat_interval < 1
        ):
            raise EmberValueError(
                f"{who}: heartbeat_interval must be None or an int >= 1 (seconds), received "
                f"{heartbeat_interval!r}"
            )
        self.heartbeat_interval = heartbeat_interval
        self.storage = storage
        self.study_name = study_name or "ember-tuning"
        self.pruner = pruner
        self.verbose = int(verbose)
        self._study = None
        self._data: tuple | None = None  # (x, y, callbacks, fit_kwargs) of the last search
        self._kept: tuple | None = None  # (trial number, value, model) of this process's best

    # ------------------------------------------------------------------ Optuna objects
    def _sampler_seed(self) -> int | None:
        if self.seed is None or self.storage is None:
            return self.seed
        return _derive_seed(self.seed, os.getpid())

    def _make_sampler(self):
        raise NotImplementedError  # pragma: no cover - each search method names its sampler

    def _make_pruner(self):
        optuna = _optuna()
        p = self.pruner
        if p is None or p == "none":
            return optuna.pruners.NopPruner()
        if p == "median":
            return optuna.pruners.MedianPruner()
        if p == "hyperband":
            return optuna.pruners.HyperbandPruner()
        if isinstance(p, optuna.pruners.BasePruner):
            return p
        raise EmberValueError(
            f"{type(self).__name__}: pruner must be 'median', 'hyperband', 'none', None or an "
            f"optuna.pruners object, received {p!r}"
        )

    def _make_storage(self):
        optuna = _optuna()
        s = self.storage
        if s is None or isinstance(s, optuna.storages.BaseStorage):
            return s
        if not isinstance(s, str):
            raise EmberTypeError(
                f"{type(self).__name__}: storage must be None, a database URL such as "
                f"'sqlite:///study.db' or an optuna storage, received {type(s).__name__}"
            )
        kwargs: dict = {}
        if s.startswith("sqlite"):
            # several workers write to one file: wait for the lock rather than fail at once
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        if self.heartbeat_interval:
            try:  # Optuna >= 4.9 names
                from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

                key = "heartbeat_stale_trial_callback"
            except ImportError:  # pragma: no cover - older Optuna
                from optuna.storages import RetryFailedTrialCallback as Retry

                key = "failed_trial_callback"
            kwargs.update(
                heartbeat_interval=self.heartbeat_interval,
                grace_period=2 * self.heartbeat_interval,
                **{key: Retry(max_retry=3)},
            )
        for attempt in range(5):
            try:
                with _quiet_experimental():
                    return optuna.storages.RDBStorage(s, **kwargs)
            except Exception as exc:  # sqlalchemy's IntegrityError / OperationalError
                # workers started together on a new database race to create its tables (and
                # its alembic version row); the loser finds them made when it tries again
                if attempt == 4 or "sqlalchemy" not in type(exc).__module__:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @property
    def study(self):
        """The Optuna study (created, or loaded from the storage, on first use)."""
        if self._study is None:
            optuna = _optuna()
            direction = "minimize" if self.direction == "min" else "maximize"
            with _quiet_experimental(), _optuna_log(self.verbose):
                study = optuna.create_study(
                    storage=self._make_storage(),
                    sampler=self._make_sampler(),
                    pruner=self._make_pruner(),
                    study_name=self.study_name,
                    direction=direction,
                    load_if_exists=True,
                )
            if study.direction.name.lower() != direction:
                raise EmberValueError(
                    f"{type(self).__name__}: the study {self.study_name!r} in the storage "
                    f"{study.direction.name.lower()}s its objective, but this tuner wants to "
                    f"{direction} {self.objective!r}; use another study_name"
                )
            stored = study.user_attrs.get("objective")
            if stored is not None and stored != self.objective:
                raise EmberValueError(
                    f"{type(self).__name__}: the study {self.study_name!r} was run with "
                    f"objective={stored!r}, not {self.objective!r}; use another study_name"
                )
            if stored is None:
                study.set_user_attr("objective", self.objective)
                study.set_user_attr("space", self.space.to_dict())
            self._study = study
        return self._study

    def enqueue(self, params: Mapping[str, Any]) -> None:
        """Run these parameter values next (a known-good default, say), before the sampler's."""
        with _optuna_log(self.verbose):
            self.study.enqueue_trial(dict(params))

    # ------------------------------------------------------------------ the search
    @property
    def budget(self) -> int | None:
        """How many trials the study should hold (None: no limit; search then needs one)."""
        return self.max_trials

    @staticmethod
    def _counts(t) -> bool:
        """Whether a trial uses up the budget: finished or running, but not a trial that was
        interrupted (it is run again) nor a surplus one (it never ran)."""
        if t.state.name in _COUNTED:
            return True
        return t.state.name == "FAIL" and "error" in t.user_attrs

    def search(self, x, y=None, *, callbacks=None, **fit_kwargs) -> Tuner:
        """Run trials until the study holds ``max_trials`` of them; returns the tuner.

        Args:
            x: the training inputs (anything ``Model.fit`` takes).
            y: the targets.
            callbacks: ember callbacks added to every trial's fit (EarlyStopping, ...).
            **fit_kwargs: passed to every ``model.fit`` (epochs, batch_size,
                validation_split or validation_data, ...); ``verbose`` defaults to 0.
        """
        optuna = _optuna()
        if self.budget is None:
            raise EmberValueError(f"{type(self).__name__}.search: give max_trials")
        fit_kwargs.setdefault("verbose", 0)
        self._data = (x, y, list(callbacks or []), fit_kwargs)
        with _optuna_log(self.verbose):
            study = self.study
            self._requeue_interrupted()
            if self.verbose:
                done = sum(self._counts(t) for t in study.get_trials(deepcopy=False))
                print(
                    f"[tune] {self.method} search: {self.objective} ({self.direction}), "
                    f"{self.budget} trials, {done} already in study {self.study_name!r}",
                    flush=True,
                )
            # whether dead workers' trials are noticed (Optuna keeps this helper private)
            from optuna.storages._heartbeat import is_heartbeat_enabled

            heartbeat = is_heartbeat_enabled(study._storage)
            while True:
                if heartbeat:
                    with _quiet_experimental():
                        optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                if heartbeat and self._fail_unstarted(study, trials):
                    continue
                if sum(self._counts(t) for t in trials) >= self.budget:
                    if heartbeat and any(t.state.name == "RUNNING" for t in trials):
                        # other workers are finishing the last trials; if one of them dies,
                        # its trial comes back (as a retry) for this worker to run
                        time.sleep(min(1.0, (self.heartbeat_interval or 2) / 2))
                        continue
                    break
                study.optimize(
                    self._objective, n_trials=1, catch=(_TrialFailed,), callbacks=[self._report]
                )
        if self.verbose:
            try:
                best = self.best_trial
                print(
                    f"[tune] best: trial {best['trial']} {self.objective}="
                    f"{best['objective']:.6g} {best['params']}",
                    flush=True,
                )
            except EmberValueError:
                print("[tune] no trial completed", flush=True)
        return self

    @staticmethod
    def _fail_unstarted(study, trials) -> bool:
        """Mark failed the running trials that never started (see _START_GRACE_S); whether
        there were any."""
        import datetime

        now = datetime.datetime.now()
        dead = [
            t
            for t in trials
            if t.state.name == "RUNNING"
            and "seed" not in t.user_attrs
            and t.datetime_start is not None
            and (now - t.datetime_start).total_seconds() > _START_GRACE_S
        ]
        for t in dead:
            study.tell(t.number, state=_optuna().trial.TrialState.FAIL)
        return bool(dead)

    def _requeue_interrupted(self) -> None:
        """Queue again the trials a Ctrl+C stopped (a killed worker's trials come back through
        Optuna's heartbeat instead), with their parameters and seed."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.system_attrs.get("failed_trial") for t in trials}
        retried |= {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            if (
                t.state.name == "FAIL"
                and not self._counts(t)
                and not t.user_attrs.get("surplus")
                and t.number not in retried
                and t.params
            ):
                attrs = {"retry_of": t.number}
                if "seed" in t.user_attrs:
                    attrs["seed"] = t.user_attrs["seed"]
                self.study.enqueue_trial(dict(t.params), user_attrs=attrs)

    def _suggest(self, trial) -> dict:
        return self.space.suggest(trial)

    def _objective(self, trial) -> float:
        optuna = _optuna()
        from ember import backend

        study = self.study
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(self._counts(t) for t in earlier) >= self.budget:
            trial.set_user_attr("surplus", True)
            raise _Surplus(f"the study already holds {self.budget} trials")
        params = self._suggest(trial)
        seed = trial.user_attrs.get("seed")  # a retried trial keeps its seed
        if seed is None:
            seed = (
                _derive_seed(self.seed, trial.number)
                if self.seed is not None
                else _derive_seed(*np.random.SeedSequence().generate_state(2))
            )
        trial.set_user_attr("seed", int(seed))
        trial.set_user_attr("params", params)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        x, y, callbacks, fit_kwargs = self._data
        cb = TrialCallback(trial, self.objective, self.direction, self.objective_epoch == "best")
        backend.set_seed(int(seed))
        try:
            model = self.build_model(dict(params))
        except Exception as exc:
            self._fail(trial, cb, exc)
        if not callable(getattr(model, "fit", None)) or not getattr(model, "compiled", True):
            msg = (
                f"{type(self).__name__}: build_model must return a compiled Model, received "
                f"{type(model).__name__}" + (" (not compiled)" if hasattr(model, "fit") else "")
            )
            trial.set_user_attr("error", msg)
            raise EmberTypeError(msg)  # a mistake in the code, not in these parameters: stop
        try:
            model.fit(x, y, callbacks=[*callbacks, cb], **fit_kwargs)
        except Exception as exc:
            self._fail(trial, cb, exc)
        trial.set_user_attr("epochs", cb.epochs)
        if cb.nan_at is not None:
            trial.set_user_attr("error", f"{self.objective} is NaN at epoch {cb.nan_at}")
            raise _TrialFailed(trial.user_attrs["error"])
        if cb.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {cb.pruned_at}")
        if not cb.values:
            msg = (
                f"{type(self).__name__}: the objective {self.objective!r} is not in the logs of "
                f"fit (logged: {sorted(cb.keys)}); a val_ objective needs validation_split or "
                f"validation_data in search(...)"
            )
            trial.set_user_attr("error", msg)
            raise EmberValueError(msg)  # every trial would fail the same way: stop
        pick = min if self.direction == "min" else max
        value = cb.values[-1] if self.objective_epoch == "last" else pick(cb.values)
        if cb.best_weights is not None:
            model.set_weights(cb.best_weights)
        if self._kept is None or (
            value < self._kept[1] if self.direction == "min" else value > self._kept[1]
        ):
            self._kept = (trial.number, value, model)  # only this process's best is kept
        return value

    @staticmethod
    def _fail(trial, cb, exc):
        trial.set_user_attr("epochs", cb.epochs)
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
        raise _TrialFailed(trial.user_attrs.get("error", "")) from exc

    def _report(self, study, frozen) -> None:
        """Optuna calls this after each trial of this process: the progress line."""
        if not self.verbose or frozen.user_attrs.get("surplus"):
            return
        row = self._row(frozen)
        done = sum(self._counts(t) and t.state.name != "RUNNING" for t in study.get_trials())
        value = "-" if row["objective"] is None else f"{row['objective']:.4g}"
        try:
            best = f"best {study.best_value:.4g} (trial {study.best_trial.number})"
        except ValueError:
            best = "best -"
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}s"
        line = (
            f"[tune] {done:>3}/{self.budget} trial {row['trial']:<3} {row['state']:<8} "
            f"{self.objective}={value:<9} {best}  epochs={row['epochs']} {seconds}  "
            f"{_fmt_params(row['params'])}"
        )
        if row["error"]:
            line += f"  ({row['error'][:120]})"
        print(line, flush=True)

    # ------------------------------------------------------------------ results
    def _row(self, t) -> dict:
        state = t.state.name
        error = t.user_attrs.get("error")
        if state == "FAIL" and error is None:
            error = "interrupted: its worker stopped before the trial finished (run again)"
        value = None
        if state == "COMPLETE":
            value = t.value
        elif state == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        return {
            "trial": t.number,
            "state": state,
            "objective": value,
            "epochs": t.user_attrs.get("epochs"),
            "seconds": t.duration.total_seconds() if t.duration is not None else None,
            "params": dict(t.user_attrs.get("params", t.params)),
            "error": error,
            "worker": t.user_attrs.get("worker"),
            "retry_of": t.system_attrs.get("failed_trial", t.user_attrs.get("retry_of")),
        }

    @property
    def results(self) -> list[dict]:
        """One dict per trial of the study (every worker's), by trial number: ``trial``,
        ``state`` (COMPLETE, PRUNED, FAIL, RUNNING, WAITING), ``objective`` (a pruned trial's
        last reported value; None when failed), ``epochs`` run, ``seconds``, ``params``,
        ``error`` (why it failed), ``worker`` (host:pid) and ``retry_of`` (the interrupted
        trial it reruns)."""
        trials = self.study.get_trials(deepcopy=False)
        return [self._row(t) for t in trials if not t.user_attrs.get("surplus")]

    def _param_names(self, rows) -> list[str]:
        names = list(self.space.params)
        for r in rows:
            names += [k for k in r["params"] if k not in names]
        return names

    def results_table(self) -> str:
        """``results`` as an aligned text table (one line per trial)."""
        rows = self.results
        names = self._param_names(rows)
        header = ["trial", "state", self.objective, "epochs", "seconds", *names, "note"]
        lines = [header]
        for r in rows:
            lines.append(
                [
                    str(r["trial"]),
                    r["state"],
                    "-" if r["objective"] is None else f"{r['objective']:.5g}",
                    "-" if r["epochs"] is None else str(r["epochs"]),
                    "-" if r["seconds"] is None else f"{r['seconds']:.2f}",
                    *(_fmt_value(r["params"].get(n, "-")) for n in names),
                    (r["error"] or "")[:60],
                ]
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)

    def to_csv(self, path) -> str:
        """Write ``results`` as CSV (one column per parameter, empty where inactive)."""
        rows = self.results
        names = self._param_names(rows)
        cols = ["trial", "state", self.objective, "epochs", "seconds", *names]
        cols += ["error", "worker", "retry_of"]
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in rows:
                w.writerow(
                    [r["trial"], r["state"], r["objective"], r["epochs"], r["seconds"]]
                    + [r["params"].get(n, "") for n in names]
                    + [r["error"] or "", r["worker"] or "", r["retry_of"]]
                )
        return os.fspath(path)

    def _best_frozen(self):
        try:
            return self.study.best_trial
        except ValueError:
            raise EmberValueError(
                f"{type(self).__name__}: no trial has completed yet; run search(...) first"
            ) from None

    @property
    def best_trial(self) -> dict:
        """The ``results`` row of the best completed trial."""
        return self._row(self._best_frozen())

    @property
    def best_params(self) -> dict:
        """The parameters of the best completed trial (what ``build_model`` received)."""
        return self.best_trial["params"]

    @property
    def best_value(self) -> float:
        """The best objective value."""
        return float(self._best_frozen().value)

    def best_model(self, retrain: bool = False):
        """The model of the best trial.

        When that trial ran in this process, its trained model is kept and returned as is
        (with ``objective_epoch="best"``, holding the best epoch's weights). Otherwise (it ran
        in another worker or an earlier session), or with ``retrain=True``, the model is built
        again from the best parameters with the trial's seed and trained on the data of the
        last ``search`` call, with the same fit arguments (no pruning).
        """
        best = self._best_frozen()
        if not retrain and self._kept is not None and self._kept[0] == best.number:
            return self._kept[2]
        if self._data is None:
            raise EmberValueError(
                f"{type(self).__name__}.best_model: the best trial ({best.number}) did not run "
                f"in this process, so its weights are not here and the model must be trained "
                f"again: call search(x, y, ...) first (on a finished study it runs no trial)"
            )
        from ember import backend

        x, y, callbacks, fit_kwargs = self._data
        backend.set_seed(int(best.user_attrs["seed"]))
        model = self.build_model(dict(best.user_attrs.get("params", best.params)))
        cb = TrialCallback(None, self.objective, self.direction, self.objective_epoch == "best")
        model.fit(x, y, callbacks=[*callbacks, cb], **fit_kwargs)
        if cb.best_weights is not None:
            model.set_weights(cb.best_weights)
        return model

    def plot(self, path, title: str | None = None) -> str:
        """Save a figure of the objective by trial (pruned trials at their last value, failed
        ones as marks on the axis) with the best-so-far line; PNG/SVG/PDF by extension."""
        from ember.plotting import new_figure, save_figure

        rows = self.results
        fig, (ax,) = new_figure("Tuner.plot", size=(7, 4))
        done = [r for r in rows if r["state"] == "COMPLETE"]
        pruned = [r for r in rows if r["state"] == "PRUNED" and r["objective"] is not None]
        failed = [r for r in rows if r["state"] == "FAIL"]
        if done:
            ax.plot([r["trial"] for r in done], [r["objective"] for r in done], "o",
                    color="tab:blue", label="complete")  # fmt: skip
            pick = min if self.direction == "min" else max
            xs, best = [], []
            for r in done:
                xs.append(r["trial"])
                best.append(r["objective"] if not best else pick(best[-1], r["objective"]))
            if rows[-1]["trial"] > xs[-1]:  # carry the line to the last trial
                xs.append(rows[-1]["trial"])
                best.append(best[-1])
            ax.step(xs, best, where="post", color="tab:orange", label="best so far")
        if pruned:
            ax.plot([r["trial"] for r in pruned], [r["objective"] for r in pruned], "x",
                    color="gray", label="pruned (last value)")  # fmt: skip
        if failed:
            for r in failed:
                ax.axvline(r["trial"], color="tab:red", alpha=0.25, lw=2)
            ax.plot([], [], color="tab:red", alpha=0.4, lw=2, label="failed")
        ax.set_xlabel("trial")
        ax.set_ylabel(self.objective)
        ax.set_title(title or f"{self.method} search: {self.objective} ({self.direction})")
        ax.grid(alpha=0.3)
        if rows:
            ax.legend(fontsize=8)
        return save_figure(fig, path)


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt_params(params: dict) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in params.items())


# ---------------------------------------------------------------------- the search methods
class GridSearch(Tuner):
    """Every combination of the space's values, each once, in a seeded random order.

    The number of trials is the product of the parameters' numbers of values (for a
    conditional space, each branch counts only its own parameters). A continuous ``Float``
    needs ``step=`` (or use ``Choice``). Optuna's ``GridSampler`` runs a plain grid; a
    conditional one runs on its ``BruteForceSampler``, which walks define-by-run spaces.

    Args:
        max_trials: None (default) runs the whole grid; a smaller number runs a random part.
        (the others as ``Tuner``)
    """

    method = "grid"

    def __init__(
        self,
        build_model,
        space,
        objective: str = "val_loss",
        max_trials: int | None = None,
        seed: int | None = None,
        storage=None,
        **kwargs,
    ):
        super().__init__(build_model, space, objective, max_trials, seed, storage, **kwargs)
        self.grid_size = self.space.grid_size()  # raises for a continuous Float

    @property
    def budget(self) -> int:
        return self.grid_size if self.max_trials is None else min(self.max_trials, self.grid_size)

    def _suggest(self, trial) -> dict:
        return self.space.suggest_grid(trial)

    def _make_sampler(self):
        optuna = _optuna()
        if not self.space.conditional:
            # every worker must shuffle the grid the same way: trial n runs grid point n
            return optuna.samplers.GridSampler(self.space.grid_values(), seed=self.seed or 0)
        with _quiet_experimental():
            try:
                return optuna.samplers.BruteForceSampler(seed=self.seed, avoid_premature_stop=True)
            except TypeError:  # pragma: no cover - Optuna < 4.2
                return optuna.samplers.BruteForceSampler(seed=self.seed)


class RandomSearch(Tuner):
    """Independent random draws from the space (Optuna's ``RandomSampler``): the baseline that
    Bergstra and Bengio showed beats a grid when only a few parameters matter.

    Args: as ``Tuner``.
    """

    method = "random"

    def _make_sampler(self):
        return _optuna().samplers.RandomSampler(seed=self._sampler_seed())


class BayesianOptimization(Tuner):
    """A probabilistic model of the objective proposes each next trial.

    ``sampler="tpe"`` (default) is Optuna's Tree-structured Parzen Estimator (multivariate;
    grouped over a conditional space): it models which parameters give good and bad trials
    and proposes where good is likely. ``sampler="gp"`` is Optuna's Gaussian-process sampler
    (expected improvement; needs torch and scipy; conditional parameters outside the part
    common to all trials are drawn at random). The first ``n_startup_trials`` are random.

    Args:
        sampler: "tpe", "gp" or an ``optuna.samplers`` object.
        n_startup_trials: random trials before the model takes over.
        (the others as ``Tuner``)
    """

    method = "bayesian"

    def __init__(
        self,
        build_model,
        space,
        objective: str = "val_loss",
        max_trials: int | None = 10,
        seed: int | None = None,
        storage=None,
        *,
        sampler="tpe",
        n_startup_trials: int = 10,
        **kwargs,
    ):
        super().__init__(build_model, space, objective, max_trials, seed, storage, **kwargs)
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int):
            raise EmberTypeError(
                f"BayesianOptimization: n_startup_trials must be an int, received "
                f"{n_startup_trials!r}"
            )
        if n_startup_trials < 0:
            raise EmberValueError(
                f"BayesianOptimization: n_startup_trials must be >= 0, received {n_startup_trials}"
            )
        self.n_startup_trials = n_startup_trials
        optuna = _optuna()
        if sampler == "gp":
            missing = [m for m in ("torch", "scipy") if not _importable(m)]
            if missing:
                raise ImportError(
                    f"BayesianOptimization(sampler='gp') needs {' and '.join(missing)} "
                    f"(Optuna's Gaussian process runs on them); sampler='tpe' needs neither"
                )
        elif sampler != "tpe" and not isinstance(sampler, optuna.samplers.BaseSampler):
            raise EmberValueError(
                f"BayesianOptimization: sampler must be 'tpe', 'gp' or an optuna sampler, "
                f"received {sampler!r}"
            )
        self.sampler = sampler
        self.method = f"bayesian ({sampler})" if isinstance(sampler, str) else "bayesian"

    def _make_sampler(self):
        optuna = _optuna()
        seed = self._sampler_seed()
        if self.sampler == "gp":
            with _quiet_experimental():
                return optuna.samplers.GPSampler(
                    seed=seed,
                    n_startup_trials=self.n_startup_trials,
                    warn_independent_sampling=False,
                )
        if self.sampler == "tpe":
            with _quiet_experimental():
                return optuna.samplers.TPESampler(
                    seed=seed,
                    n_startup_trials=self.n_startup_trials,
                    multivariate=True,
                    group=self.space.conditional,
                    constant_liar=True,  # parallel workers do not all try the same point
                )
        return self.sampler


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


__all__ = ["Tuner", "GridSearch", "RandomSearch", "BayesianOptimization", "TrialCallback"]
