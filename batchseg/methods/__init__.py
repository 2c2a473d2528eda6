"""Segmentation methods: plain numpy-in, numpy-out kernels and their registry."""

from batchseg.methods.base import Method, Param, smallest_uint
from batchseg.methods.registry import all_methods, get_method, register

__all__ = ["Method", "Param", "all_methods", "get_method", "register", "smallest_uint"]
