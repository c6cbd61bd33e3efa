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


@pytest.fixture
def cupy():
    """CuPy for a GPU test: the real module where CuPy sees a GPU, else the NumPy-backed
    stand-in of tests/cupy_standin (installed as minifp's CuPy for the test), so that
    every GPU test runs in CI and unchanged on a GPU."""
    from minifp import backend
    from minifp.kernels import cuda
    if backend.gpu_available():
        yield backend.cupy_module()
        return
    from minifp import kernels
    if kernels.library() is None:
        pytest.skip("the stand-in runs the C kernels, and they cannot be built here")
    import cupy_standin
    cuda.reset()
    with cupy_standin.installed():
        yield cupy_standin
    cuda.reset()
