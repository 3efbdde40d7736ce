"""Pipeline (model) parallelism, GPipe-style: consecutive layers of a Sequential live on
different ranks; each global batch is cut into micro-batches that flow forward through the stages
(fill), then their gradients flow back (drain). Activations travel forward and gradients backward
as point-to-point messages. Every rank updates only its own stage's weights.

Exactness: the loss of each micro-batch is divided by the number of micro-batches, so the
accumulated gradient equals the full batch's mean-loss gradient (equal micro-batch sizes).
"""

from __future__ import annotations

import numpy as np

from ember.autograd import Tensor, no_grad
from ember.distributed.comm import Communicator, world
from ember.errors import EmberValueError


def split_stages(layers: list, stages: int) -> list:
    """Cut a list of layers into ``stages`` consecutive groups, as even in count as possible."""
    if not 1 <= stages <= len(layers):
        raise EmberValueError(
            f"PipelineParallel: stages must be between 1 and the number of layers "
            f"({len(layers)}), received stages={stages}"
        )
    bounds = np.linspace(0, len(layers), stages + 1).round().astype(int)
    return [layers[bounds[i] : bounds[i + 1]] for i in range(stages)]


class PipelineParallel:
    """Split a Sequential across ranks and train it with micro-batches.

    Args:
        model: a built ``ember.Sequential`` (the same on every rank: build it from the same seed
            or load the same file). Each rank keeps only its stage's layers busy.
        stages: number of stages; must equal the number of ranks.
        micro_batches: how many pieces each global batch is cut into.
        boundaries: optional explicit cut points (layer indices) instead of an even split.
    """

    def __init__(
        self,
        model,
        stages: int | None = None,
        micro_batches: int = 4,
        boundaries=None,
        comm: Communicator | None = None,
    ):
        self.comm = comm or world()
        self.model = model
        stages = stages or self.comm.size
        if stages != self.comm.size:
            raise EmberValueError(
                f"PipelineParallel: stages ({stages}) must equal the number of MPI ranks "
                f"({self.comm.size}); launch with mpiexec -n {stages}"
            )
        layers = [layer for layer in model.layers]
        if boundaries is not None:
            cuts = [0, *boundaries, len(layers)]
            self.stages = [layers[cuts[i] : cuts[i + 1]] for i in range(len(cuts) - 1)]
        else:
            self.stages = split_stages(layers, stages)
        self.micro_batches = int(micro_batches)
        self.layers = self.stages[self.comm.rank]
        self.optimizer = None
        self.loss = None

    @property
    def is_first(self) -> bool:
        return self.comm.rank == 0

    @property
    def is_last(self) -> bool:
        return self.comm.rank == self.comm.size - 1

    @property
    def trainable_weights(self) -> list:
        return [p for layer in self.layers for p in layer.trainable_weights]

    def compile(self, optimizer, loss) -> None:
        from ember import losses, optimizers

        self.optimizer = optimizers.get(optimizer)
        self.optimizer.params = self.trainable_weights  # this stage's weights only
        self.loss = losses.get(loss)

    def _run_stage(self, x: Tensor, training: bool) -> Tensor:
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def train_on_batch(self, x, y) -> float | None:
        """One optimizer step on a global batch; returns the batch loss on the last rank."""
        comm, m = self.comm, self.micro_batches
        pieces = np.array_split(np.arange(len(x)), m)
        saved, total = [], 0.0
        # fill: forward every micro-batch, keeping each stage's graph for the drain
        for idx in pieces:
            if self.is_first:
                inp = Tensor(np.asarray(x)[idx])  # data: no gradient needed
            else:
                inp = Tensor(comm.recv(comm.rank - 1, dtype=self._act_dtype()), requires_grad=True)
            out = self._run_stage(inp, training=True)
            if self.is_last:
                loss = self.loss(np.asarray(y)[idx], out) * (1.0 / m)
                total += float(loss.data)
                saved.append((inp, loss))
            else:
                comm.send(out.data, comm.rank + 1)
                saved.append((inp, out))
        # drain: gradients flow back in reverse micro-batch order
        for inp, out in reversed(saved):
            if self.is_last:
                out.backward()
            else:
                grad = comm.recv(comm.rank + 1, dtype=out.dtype)
                out.backward(grad)
            if not self.is_first:
                comm.send(inp.grad, comm.rank - 1)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return total if self.is_last else None

    def _act_dtype(self):
        from ember import backend

        return backend.float_dtype()

    def predict(self, x) -> np.ndarray | None:
        """Forward only; the last rank returns the outputs, the others None."""
        comm = self.comm
        with no_grad():
            if self.is_first:
                out = self._run_stage(Tensor(np.asarray(x)), training=False)
            else:
                out = self._run_stage(
                    Tensor(comm.recv(comm.rank - 1, self._act_dtype())), training=False
                )
            if not self.is_last:
                comm.send(out.data, comm.rank + 1)
                return None
            return out.data

    def fit(
        self, x, y, batch_size: int = 32, epochs: int = 1, shuffle: bool = False, verbose: int = 1
    ) -> list:
        """Plain epochs of train_on_batch; returns the last rank's per-epoch mean losses."""
        from ember import backend

        history = []
        n = len(x)
        for epoch in range(epochs):
            order = backend.rng().permutation(n) if shuffle else np.arange(n)
            losses = []
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loss = self.train_on_batch(
                    np.asarray(x)[idx] if self.is_first else idx,
                    np.asarray(y)[idx] if self.is_last else idx,
                )
                if loss is not None:
                    losses.append(loss)
            if self.is_last:
                history.append(float(np.mean(losses)))
                if verbose:
                    print(f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}", flush=True)
        return history
