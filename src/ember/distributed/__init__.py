"""ember.distributed: training on many processes over MPI (mpi4py + mpich).

Data parallelism (``DataParallel``, alias ``MirroredStrategy``; ``fit(strategy=...)`` or
``DistributedOptimizer`` in a hand-written loop) and pipeline model parallelism
(``PipelineParallel``). Launch with ``mpiexec -n N python script.py`` or
``ember train --workers N``.
Without MPI every function works as a world of one.
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
