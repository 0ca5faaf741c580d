"""NumPy references of every kernel: the readable spec and the tests' oracle.

One module per kernel family, named like `kernels/<family>.cu`, one function per kernel with
the kernel's name and the wrapper's signature.
"""
