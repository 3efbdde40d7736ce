"""ember's exceptions. Each message names the layer or argument, what was expected and what was
received. They subclass the built-in types so ``except ValueError`` keeps working."""


class EmberError(Exception):
    """Base class of every ember error."""


class EmberValueError(EmberError, ValueError):
    """An argument or input has the right type but a wrong value."""


class ShapeError(EmberValueError):
    """Arrays whose shapes do not fit together (broadcast, matmul, a layer's input)."""


class EmberTypeError(EmberError, TypeError):
    """An argument of the wrong type."""


class GraphError(EmberError, RuntimeError):
    """Misuse of the autograd graph (backward twice, backward on a non-scalar, ...)."""


class GradcheckError(EmberError, AssertionError):
    """Analytic and numerical gradients disagree."""


class AnomalyError(EmberError, FloatingPointError):
    """``detect_anomaly`` found a NaN or Inf; the message names the op."""


class FileFormatError(EmberError, ValueError):
    """A model, checkpoint or data file that is damaged, truncated or not ember's."""
