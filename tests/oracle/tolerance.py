"""The oracle tests' one comparison rule: relative error 1e-8 in float64 and 1e-4 in float32,
with the absolute floor scaled by the reference's largest magnitude (sums of products cancel
element-wise, so a tiny element of the result can carry the big ones' rounding)."""

import numpy as np

RTOL = {"float64": 1e-8, "float32": 1e-4}


def close(ours, theirs, dtype, what: str = "") -> None:
    """Assert ember's array (or Tensor) equals the reference (ndarray or torch tensor)."""
    ours = np.asarray(getattr(ours, "data", ours) if not isinstance(ours, np.ndarray) else ours)
    if hasattr(theirs, "detach"):
        theirs = theirs.detach().numpy()
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what} shape {ours.shape} vs {theirs.shape}"
    assert ours.dtype == np.dtype(dtype), f"{what} dtype {ours.dtype}, expected {dtype}"
    rtol = RTOL[str(np.dtype(dtype))]
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=what)
