"""Test helpers that ship with tinynet.

``tinynet.testing.strict_cupy`` is a CuPy stand-in that computes with numpy but
refuses host/device mixing the way CuPy does; the test suite runs every op
through it on machines without a GPU (see ``tinynet.backend.install_cuda``).
"""
