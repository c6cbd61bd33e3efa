"""Shared fixtures."""
import pytest


def _skip_without_kernels():
    from minifp import kernels
    kernels.reset()
    try:
        if kernels.library() is None:
            pytest.skip("the C kernels are unavailable on this machine")
    except kernels.BuildError as e:          # MINIFP_KERNELS=c with no compiler, or numpy
        pytest.skip(str(e))


@pytest.fixture(scope="module", params=["numpy", "c"])
def both_engines(request):
    """Run a module's tests once with the NumPy reference orders and once with the C
    kernels (``MINIFP_KERNELS``); the kernels' run skips where they cannot be built."""
    from minifp import kernels
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIFP_KERNELS", request.param)
        if request.param == "c":
            _skip_without_kernels()
        yield request.param
    kernels.reset()


@pytest.fixture(scope="module")
def kernels_built():
    """Skip the module where the C kernels cannot be built (no C compiler)."""
    _skip_without_kernels()
