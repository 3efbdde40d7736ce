"""Pipeline (model) parallelism, GPipe-style: consecutive layers of a Sequential live on
different ranks; each global batch is cut into micro-batches that flow forward through the stages
(fill), then their gradients flow back in reverse order (drain), and each rank updates its own
stage's weights once per batch. Activations travel forward and gradients backward as
point-to-point messages; the sends are non-blocking, so while stage 1 works on micro-batch 0,
stage 0 already computes micro-batch 1.

Exactness: micro-batch ``j`` of ``n_j`` examples contributes ``(n_j / N) * loss_j``, so the
gradients the stages accumulate are those of the mean loss over the whole batch; each stage adds
the gradient of its own weights' penalties once. For models without BatchNormalization (whose
statistics would be per micro-batch) or dropout, an update equals one process's update.
"""

from __future__ import annotations

import numpy as np

from ember.autograd import Tensor, no_grad
from ember.distributed.comm import Communicator, dtype_from_num, world
from ember.errors import EmberTypeError, EmberValueError
from ember.layers.base import training_mode

_FORWARD, _BACKWARD = 11, 12  # message tags: activations, gradients


def split_stages(layers: list, stages: int) -> list:
    """Cut a list of layers into ``stages`` consecutive groups, as even in count as possible."""
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)):
        raise EmberTypeError(f"PipelineParallel: stages must be an int, received {stages!r}")
    if not 1 <= stages <= len(layers):
        raise EmberValueError(
            f"PipelineParallel: stages must be between 1 and the number of layers "
            f"({len(layers)}), received stages={stages}"
        )
    bounds = [i * len(layers) // stages for i in range(stages + 1)]
    return [layers[bounds[i] : bounds[i + 1]] for i in range(stages)]


class PipelineParallel:
    """Split a Sequential across the ranks and train it with micro-batches.

    Every rank builds the same Sequential (the weights need not agree: rank 0's are broadcast
    on first use); rank ``r`` runs stage ``r``. Rank 0 needs the inputs, the last rank the
    targets; the other ranks may pass None.

    Args:
        model: an ``ember.Sequential`` (compiled, or ``compile`` here).
        stages: the number of stages; must equal the number of ranks (default: that number).
        micro_batches: how many pieces each global batch is cut into (at least ``stages`` to
            keep every stage busy).
        boundaries: optional cut points (layer indices, increasing) instead of an even split
            by layer count, e.g. ``[3]`` for layers 0-2 on rank 0 and the rest on rank 1.
        comm: the communicator (default: MPI's world).
    """

    def __init__(
        self,
        model,
        stages: int | None = None,
        micro_batches: int = 4,
        boundaries=None,
        comm: Communicator | None = None,
    ):
        self.comm = comm if comm is not None else world()
        layers = getattr(model, "layers", None)
        if not isinstance(layers, list) or not layers:
            raise EmberTypeError(
                f"PipelineParallel: model must be a Sequential with layers, received "
                f"{type(model).__name__}"
            )
        stages = self.comm.size if stages is None else stages
        if stages != self.comm.size:
            raise EmberValueError(
                f"PipelineParallel: stages ({stages}) must equal the number of MPI ranks "
                f"({self.comm.size}); launch with mpiexec -n {stages}"
            )
        if boundaries is not None:
            cuts = [0, *[int(b) for b in boundaries], len(layers)]
            if len(cuts) != stages + 1 or any(a >= b for a, b in zip(cuts, cuts[1:])):
                raise EmberValueError(
                    f"PipelineParallel: boundaries must be {stages - 1} increasing layer "
                    f"indices in 1..{len(layers) - 1}, received {list(boundaries)}"
                )
            self.stages = [layers[cuts[i] : cuts[i + 1]] for i in range(stages)]
        else:
            self.stages = split_stages(layers, stages)
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, (int, np.integer)):
            raise EmberTypeError(
                f"PipelineParallel: micro_batches must be an int, received {micro_batches!r}"
            )
        if micro_batches < 1:
            raise EmberValueError(
                f"PipelineParallel: micro_batches must be >= 1, received {micro_batches}"
            )
        self.model = model
        self.micro_batches = int(micro_batches)
        self.layers = self.stages[self.comm.rank]
        self.optimizer = getattr(model, "optimizer", None)
        self.loss = getattr(model, "compiled_loss", None)
        self._ready = False

    def __repr__(self) -> str:
        sizes = [len(s) for s in self.stages]
        return (
            f"PipelineParallel(stage {self.comm.rank} of {len(sizes)}, layers per stage "
            f"{sizes}, micro_batches={self.micro_batches})"
        )

    @property
    def is_first(self) -> bool:
        return self.comm.rank == 0

    @property
    def is_last(self) -> bool:
        return self.comm.rank == self.comm.size - 1

    @property
    def trainable_weights(self) -> list:
        """This rank's stage's trainable weights."""
        out, seen = [], set()
        for layer in self.layers:
            for p in layer.trainable_weights:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def compile(self, optimizer, loss) -> None:
        """Choose the optimizer (each rank updates only its stage's weights) and the loss."""
        from ember import losses, optimizers

        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)

    # ------------------------------------------------------------------ setup
    def _setup(self, x) -> None:
        """Once, on every rank: build the model from rank 0's input shape, then give every
        rank rank 0's weights."""
        if self._ready:
            return
        header = np.zeros(10, dtype=np.int64)
        if self.is_first:
            a = np.asarray(x)
            header[0], header[1] = a.ndim, a.dtype.num
            header[2 : 1 + a.ndim] = a.shape[1:]
        self.comm.broadcast_(header, what="the input shape")
        if not self.model.built:
            ndim = int(header[0])
            dtype = dtype_from_num(header[1])
            dummy = np.zeros((1, *[int(s) for s in header[2 : 1 + ndim]]), dtype=dtype)
            with no_grad(), training_mode(False):
                self.model(dummy)
        from ember.distributed.data_parallel import DataParallel

        DataParallel(self.comm).broadcast_weights(self.model)
        self._ready = True

    def _batch_size(self, x) -> int:
        n = np.array([len(x) if self.is_first else 0], dtype=np.int64)
        self.comm.broadcast_(n, what="the batch size")
        return int(n[0])

    def _run_stage(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    # ------------------------------------------------------------------ training
    def train_on_batch(self, x, y=None, sample_weight=None) -> float:
        """One update on a global batch (call it on every rank; ``x`` is needed on rank 0,
        ``y`` and ``sample_weight`` on the last rank). Returns the batch's loss, penalties
        included, on every rank."""
        if self.optimizer is None or self.loss is None:
            raise EmberValueError(
                "PipelineParallel: no optimizer or loss; compile the model (or the pipeline) first"
            )
        self._setup(x)
        comm = self.comm
        n = self._batch_size(x)
        if n == 0:
            raise EmberValueError("PipelineParallel.train_on_batch: the batch is empty")
        pieces = np.array_split(np.arange(n), min(self.micro_batches, n))
        for p in self.trainable_weights:
            p.grad = None
        saved, pending, data_loss = [], [], 0.0
        with training_mode(True):
            # fill: every micro-batch forward, keeping each stage's graph for the drain
            for idx in pieces:
                if self.is_first:
                    inp = Tensor(_floatx(np.asarray(x)[idx]))
                else:
                    inp = Tensor(comm.recv(comm.rank - 1, _FORWARD), requires_grad=True)
                out = self._run_stage(inp)
                if self.is_last:
                    sw = None if sample_weight is None else np.asarray(sample_weight)[idx]
                    part = self.loss(np.asarray(y)[idx], out, sample_weight=sw) * (len(idx) / n)
                    data_loss += float(part.data)
                    saved.append((inp, part))
                else:
                    pending.append(comm.isend(out.data, comm.rank + 1, _FORWARD))
                    saved.append((inp, out))
            # drain: the gradients flow back, last micro-batch first
            for inp, out in reversed(saved):
                if self.is_last:
                    out.backward()
                else:
                    out.backward(comm.recv(comm.rank + 1, _BACKWARD))
                if not self.is_first:
                    grad = inp.grad if inp.grad is not None else np.zeros(inp.shape, inp.dtype)
                    pending.append(comm.isend(grad, comm.rank - 1, _BACKWARD))
            penalty = 0.0
            penalties = [t for layer in self.layers for t in layer.losses]
            if penalties:
                total = penalties[0]
                for t in penalties[1:]:
                    total = total + t
                total.backward()
                penalty = float(total.data)
        for req in pending:
            req.wait()
        pairs = [(p.grad, p) for p in self.trainable_weights if p.grad is not None]
        if pairs:
            self.optimizer.apply_gradients(pairs)
        for p in self.trainable_weights:
            p.grad = None
        parts = np.array([data_loss if self.is_last else 0.0, penalty], dtype=np.float64)
        return float(comm.allreduce(parts, "sum", "summing the loss").sum())

    def predict(self, x, batch_size: int = 32) -> np.ndarray:
        """Forward only, in micro-batches of ``batch_size`` (``x`` is needed on rank 0); every
        rank returns the outputs."""
        self._setup(x)
        comm = self.comm
        n = self._batch_size(x)
        if n == 0:
            raise EmberValueError("PipelineParallel.predict: the input is empty")
        outs, pending = [], []
        with no_grad(), training_mode(False):
            for start in range(0, n, batch_size):
                if self.is_first:
                    inp = Tensor(_floatx(np.asarray(x)[start : start + batch_size]))
                else:
                    inp = Tensor(comm.recv(comm.rank - 1, _FORWARD))
                out = self._run_stage(inp)
                if self.is_last:
                    outs.append(out.data)
                else:
                    pending.append(comm.isend(out.data, comm.rank + 1, _FORWARD))
        for req in pending:
            req.wait()
        return self._from_last(np.concatenate(outs) if self.is_last else None)

    def _from_last(self, arr):
        """The last rank's array, on every rank."""
        comm = self.comm
        if comm.size == 1:
            return arr
        header = np.zeros(10, dtype=np.int64)
        if self.is_last:
            header[0], header[1] = arr.ndim, arr.dtype.num
            header[2 : 2 + arr.ndim] = arr.shape
        comm.broadcast_(header, root=comm.size - 1, what="the outputs' shape")
        if not self.is_last:
            dtype = dtype_from_num(header[1])
            arr = np.empty(tuple(int(s) for s in header[2 : 2 + header[0]]), dtype=dtype)
        return comm.broadcast_(np.ascontiguousarray(arr), root=comm.size - 1, what="the outputs")

    def fit(
        self, x, y, batch_size: int = 32, epochs: int = 1, shuffle: bool = True, verbose: int = 1
    ) -> dict:
        """Epochs of ``train_on_batch`` over the arrays (rank 0 draws the order); returns
        ``{"loss": [mean loss of each epoch]}`` on every rank; rank 0 prints one line per epoch
        when ``verbose``."""
        from ember import backend

        history: dict = {"loss": []}
        comm = self.comm
        for epoch in range(epochs):
            n = self._batch_size(x)
            if self.is_first and shuffle:
                order = backend.rng().permutation(n).astype(np.int64)
            else:
                order = np.arange(n, dtype=np.int64)
            if shuffle:
                comm.broadcast_(order, what="the shuffled order")
            total, seen = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loss = self.train_on_batch(
                    np.asarray(x)[idx] if self.is_first else None,
                    np.asarray(y)[idx] if self.is_last else None,
                )
                total += loss * len(idx)
                seen += len(idx)
            history["loss"].append(total / max(seen, 1))
            if verbose and comm.rank == 0:
                print(f"Epoch {epoch + 1}/{epochs} - loss: {history['loss'][-1]:.4f}", flush=True)
        return history

    def synchronize(self) -> None:
        """Give every rank every stage's current weights (e.g. before rank 0 saves the whole
        model): each stage's weights are broadcast from the rank that trains them."""
        from ember.distributed.data_parallel import DataParallel

        dp = DataParallel(self.comm)
        for r, layers in enumerate(self.stages):
            params = [p for layer in layers for p in layer.weights]
            dp.broadcast_weights(params, root=r)


def _floatx(a: np.ndarray) -> np.ndarray:
    """Float inputs in ember's float type (as fit does), integers (token ids) as they are."""
    from ember import backend

    if a.dtype.kind == "f" and a.dtype != backend.float_dtype():
        return a.astype(backend.float_dtype())
    return a
