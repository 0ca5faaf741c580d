"""NumPy references of every kernel: the readable spec and the tests' oracle.

One module per kernel family, named like `kernels/<family>.cu`, one function per kernel with
the kernel's name and its wrapper's arguments, in order, less the backend (`be`) and
compile options. Where a wrapper takes a Gaussians object, the reference takes its fields
(means, scales, quats, opacities, sh0, shN), as float64 arrays that finite differences can
perturb. A backward kernel without a NumPy function here (project_bwd) is checked against
float64 central differences of its forward reference; the module says why.
"""
