"""torch's private names, the only place this project uses them (models and runner alike).

Each is here because torch 2.14 has no public API that does the same job; each has a test in
tests/test_internals.py that calls it for real, so an upgrade that moves or renames one fails
that test by name rather than a sweep at run time. Checked and not usable instead:
torch.backends.cpu.get_cpu_capability() says "AVX512" but not whether the CPU has bf16 or AMX;
there is no public torch.utils.pytree; torch.compiler exports no exception types.

torch._dynamo and torch._inductor are imported inside the functions: importing them costs
seconds, and `import models` must not (tests/test_models.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._pytree import tree_map as _tree_map


def tree_map(function: Callable[[Any], Any], tree: Any) -> Any:
    """`function` applied to every leaf of nested dicts, lists and tuples, the containers'
    types kept (an OrderedDict state_dict stays one).

    Private: torch.utils._pytree. A checkpoint's state nests optimizer state_dicts, whose
    containers a hand-written walk would have to know; torch's is the one torch.func uses.
    """
    return _tree_map(function, tree)


def foreach_copy_(destinations: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]) -> None:
    """destination.copy_(source) for each pair, as fused multi-tensor kernels.

    Private: torch._foreach_copy_, the kernel torch's own fused optimizers use. The public
    loop of .copy_() does the same with one kernel launch per tensor, a cost per training step
    on a GPU.
    """
    torch._foreach_copy_(list(destinations), list(sources))


# The CPU features that do bf16 matrix products in hardware. torch.cpu checks them the way
# oneDNN does (CPUID, and for AMX whether the OS lets this process use the tile registers);
# no public torch function reports them.
CPU_BF16_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix products in hardware, not emulated in fp32.

    Private: torch.cpu._is_avx512_bf16_supported, torch.cpu._is_amx_tile_supported. A torch
    without one of them counts as a CPU without it (fp32, the safe choice), and the test fails.
    """
    return any(getattr(torch.cpu, check, lambda: False)() for check in CPU_BF16_CHECKS)


def has_triton() -> bool:
    """Whether inductor can build CUDA kernels here: Triton installed and a GPU it supports.

    Private: torch.utils._triton.has_triton. Finding the `triton` package is not enough: torch
    also checks the device (Triton needs compute capability 7.0 or newer).
    """
    from torch.utils._triton import has_triton as torch_has_triton

    return torch_has_triton()


def cpp_compiler() -> str | None:
    """The C++ compiler inductor builds CPU kernels with, or None when it finds none.

    Private: torch._inductor.cpp_builder.get_cpp_compiler and its InvalidCxxCompiler, the
    search inductor itself makes (train.compile's first step would fail without one).
    """
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        return get_cpp_compiler()
    except InvalidCxxCompiler:
        return None


def cpp_compiler_candidates() -> list[str]:
    """The compilers inductor looks for, in order (its config's cpp.cxx; CXX comes first).

    Private: torch._inductor.config, read for the error message only.
    """
    from torch._inductor import config as inductor_config

    candidates = inductor_config.cpp.cxx
    return [cxx for cxx in (candidates if isinstance(candidates, (list, tuple)) else (candidates,)) if cxx]


def is_compile_failure(error: BaseException) -> bool:
    """Whether `error` came out of torch.compile (dynamo or the inductor backend under it).

    Private: torch._dynamo.exc.TorchDynamoException, the base of every compile-time error torch
    raises (BackendCompilerFailed, Unsupported, ...); torch.compiler exports none of them.
    """
    from torch._dynamo.exc import TorchDynamoException

    return isinstance(error, TorchDynamoException)
