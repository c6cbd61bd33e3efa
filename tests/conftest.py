"""Shared fixtures."""
import pytest


@pytest.fixture(scope="module", params=["numpy", "c"])
def both_engines(request):
    """Run a module's tests once with the NumPy reference orders and once with the C
    kernels (``MINIFP_KERNELS``); the kernels' run skips where they cannot be built."""
    from minifp import kernels
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIFP_KERNELS", request.param)
        if request.param == "c":
            kernels.reset()
            try:
                kernels.library()
            except kernels.BuildError as e:
                pytest.skip(str(e))
        yield request.param
    kernels.reset()
