"""ember.distributed: training on many processes over MPI (mpi4py + mpich).

- Data parallelism: ``model.fit(..., strategy=DataParallel())`` (alias ``MirroredStrategy``),
  or ``DistributedOptimizer`` / ``DataParallel.split_batch`` / ``DataParallel.shard`` in a
  hand-written loop.
- Pipeline (model) parallelism: ``PipelineParallel(model, stages, micro_batches)``.
- Launch: ``mpiexec -n N python script.py``, ``python -m ember.distributed.launch -n N
  script.py`` (one BLAS thread per rank, names a rank that dies) or ``ember train --workers N``.
- Faults: a rank that raises or dies ends every rank with a message naming it (see ``comm``).

Without MPI (no ``mpiexec``) everything works as a world of one and mpi4py is not imported.
"""

from ember.distributed.comm import (
    Communicator,
    DistributedError,
    install_excepthook,
    is_chief,
    rank,
    world,
    world_size,
)
from ember.distributed.data_parallel import DataParallel, DistributedOptimizer, MirroredStrategy
from ember.distributed.pipeline import PipelineParallel, split_stages

__all__ = [
    "Communicator", "DataParallel", "DistributedError", "DistributedOptimizer",
    "MirroredStrategy", "PipelineParallel", "install_excepthook", "is_chief", "rank",
    "split_stages", "world", "world_size",
]  # fmt: skip
