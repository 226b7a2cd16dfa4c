"""Matrix product with numpy's matmul semantics (batched and broadcast).

Notation: a is (..., M, K), b is (..., K, N), y = a @ b is (..., M, N);
g has y's shape.  da = g @ bᵀ and db = aᵀ @ g, summed over broadcast batch
dimensions.  A 1-D operand is treated as a row (a) or column (b) vector.
"""
from tinynet.ops._operands import binary_operands, check_broadcast, sum_to
from tinynet.ops._parallel import blas_one_thread
from tinynet.tensor import Function


def _swap(m):
    return m.swapaxes(-1, -2)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        with blas_one_thread():        # same bits for any OPENBLAS_NUM_THREADS
            return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a          # (1, K)
        b2 = b[:, None] if b.ndim == 1 else b          # (K, 1)
        if b.ndim == 1:
            g = g[..., None]                           # (..., M) -> (..., M, 1)
        if a.ndim == 1:
            g = g[..., None, :]                        # (..., N) -> (..., 1, N)
        ga = gb = None
        with blas_one_thread():
            if self.inputs[0].requires_grad:
                ga = sum_to(g @ _swap(b2), a2.shape).reshape(a.shape)
            if self.inputs[1].requires_grad:
                gb = sum_to(_swap(a2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """a @ b.  Shapes: (..., M, K) @ (..., K, N) -> (..., M, N)."""
    a, b = binary_operands("matmul", a, b, broadcast=False)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands need at least one dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align: the last dimension "
            f"of the first ({ka}) must equal the "
            f"{'length' if b.ndim == 1 else 'second-to-last dimension'} of the second ({kb})")
    check_broadcast("matmul (batch dimensions)", a.shape[:-2], b.shape[:-2])
    return MatMul()(a, b)

