"""The strict CuPy stand-in (tests/cupy_standin): it refuses what CuPy refuses, with CuPy's
messages, counts what a GPU run pays for, runs real kernels through RawModule, and has only
functions, methods and keywords the real CuPy has (cupy_api.json)."""

from __future__ import annotations

import importlib.machinery
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cupy_standin
import numpy as np
import pytest
from cupy_standin import make_api_table

from splat_lion import kernels
from splat_lion.reference import selftest as ref

cp = cupy_standin.module()  # the stand-in's `cupy`, whether or not it is installed
TESTS = Path(__file__).parent
IMPLICIT = re.escape(cupy_standin.IMPLICIT_MESSAGE)
UNSUPPORTED = re.escape("Unsupported type <class 'numpy.ndarray'>")


def here() -> str:
    """`test_standin.py:<line>` of the caller: where a sync should be reported."""
    return f"test_standin.py:{inspect.currentframe().f_back.f_lineno}"


@pytest.fixture
def a():
    return cp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))


# -- what CuPy refuses ----------------------------------------------------------------------------

@pytest.mark.parametrize("convert", [
    np.asarray, np.array, lambda d: np.testing.assert_allclose(d, 0),
    lambda d: np.testing.assert_array_equal(d, d), lambda d: np.float32(d[0, 0]),
    lambda d: np.array([d[0, 0], d[0, 1]])], ids=["asarray", "array", "assert_allclose",
                                                  "assert_array_equal", "float32", "list"])
def test_implicit_conversion_to_numpy_is_refused_with_cupys_message(a, convert):
    with pytest.raises(TypeError, match=IMPLICIT):
        convert(a)


@pytest.mark.parametrize("mix", [
    lambda d, h: d + h, lambda d, h: h + d, lambda d, h: d * np.array(2.0, np.float32),
    lambda d, h: np.add(d, h), lambda d, h: cp.maximum(d, h), lambda d, h: cp.where(d > 0, h, d),
    lambda d, h: d < h], ids=["dev+host", "host+dev", "dev*host0d", "np.add", "cp.maximum",
                              "cp.where", "compare"])
def test_host_arrays_do_not_mix_with_device_arrays(a, mix):
    with pytest.raises(TypeError, match=UNSUPPORTED):
        mix(a, np.ones((3, 4), np.float32))


def test_joining_and_assigning_host_arrays_are_refused_as_cupy_refuses_them(a):
    with pytest.raises(TypeError, match="Only cupy arrays can be concatenated"):
        cp.concatenate([a, np.ones((1, 4), np.float32)])
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[...] = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="expected cupy.ndarray"):
        cp.ascontiguousarray(np.ones(3))
    with pytest.raises(TypeError, match="Output arguments must be cupy.ndarray"):
        cp.exp(a, out=np.empty((3, 4), np.float32))


def test_sorts_are_stable_and_take_no_other_kind(a):
    assert isinstance(cp.argsort(a.ravel(), kind="stable"), cp.ndarray)
    with pytest.raises(ValueError, match="kind can only be None or 'stable'"):
        cp.argsort(a.ravel(), kind="quicksort")


def test_scalars_mix_freely(a):
    out = a * 2 + np.float32(1) - 0.5
    assert isinstance(out, cp.ndarray) and out.dtype == np.float32
    assert isinstance(np.float32(3) * a, cp.ndarray)
    assert (a == np.array(5.0)).dtype == np.bool_  # a 0-d host array in a comparison: its value


def test_numpy_functions_on_device_arrays_run_on_the_device(a):
    for result in (np.exp(a), np.sum(a), np.linalg.norm(a, axis=1), np.isfinite(a),
                   np.concatenate([a, a]), np.where(a > 1, a, 0)):
        assert isinstance(result, cp.ndarray)


def test_reductions_and_elements_are_0d_device_arrays(a):
    for x in (a.sum(), cp.max(a), a.mean(), a.any(), a[1, 2], a.ravel()[3], cp.allclose(a, a)):
        assert isinstance(x, cp.ndarray) and x.ndim == 0


def test_stand_in_arrays_are_cupy_arrays_to_splat_lion(a):
    from splat_lion.checks import data_ptr
    assert type(a).__module__ == "cupy" and a.data.ptr == data_ptr(a)
    assert a.flags.c_contiguous and not a.T.flags.c_contiguous and a.T.base is a


# -- what it counts -------------------------------------------------------------------------------

@pytest.mark.parametrize("read, kind", [
    (float, "float"), (int, "int"), (bool, "bool"), (lambda x: x.item(), "item"),
    (lambda x: x.get(), "get"), (lambda x: x.tolist(), "tolist"),
    (lambda x: cp.asnumpy(x), "get"), (lambda x: f"{x:.3f}", "format")],
    ids=["float", "int", "bool", "item", "get", "tolist", "asnumpy", "format"])
def test_every_device_to_host_read_is_a_sync_with_its_call_site(a, read, kind):
    x = a[1, 1]
    with cupy_standin.counting() as c:
        read(x)
        line = here()
    assert c.syncs == 1  # reported where it happens (a lambda above) and its caller (here)
    assert c.sync_sites[0].startswith(f"{kind} at tests/test_standin.py:")
    assert f"tests/{line.split(':')[0]}:{int(line.split(':')[1]) - 1} " in c.sync_sites[0]


def test_waits_hidden_in_boolean_masks_and_nonzero_are_syncs(a):
    with cupy_standin.counting() as c:
        a[a > 3]
        a[a > 8] = 0
        cp.nonzero(a)
    assert c.syncs == 3
    assert [s.split(" at ")[0] for s in c.sync_sites] == ["boolean-mask index"] * 2 + ["nonzero"]


def test_views_cost_nothing_and_operations_are_counted(a):
    with cupy_standin.counting() as views:
        a.reshape(4, 3), a[1:], a[:, 2], a.T, a.view(np.int32), a.ravel(), cp.expand_dims(a, 0)
    with cupy_standin.counting() as ops:
        b = a * 2  # one operation, one new array
        b += 1  # one operation in place
        cp.zeros(3)  # a memset
        cp.empty(3)  # an allocation that launches nothing
        b[0] = 7
    assert views.as_dict() == dict.fromkeys(views.as_dict(), 0)
    assert (ops.ops, ops.allocations, ops.syncs) == (4, 3, 0)


def test_operation_sites_are_traced_on_request(a):
    with cupy_standin.counting(trace=True) as c:
        cp.exp(a)
        line = here()
    assert c.op_sites == {f"exp at tests/{line.split(':')[0]}:{int(line.split(':')[1]) - 1} "
                          f"(test_operation_sites_are_traced_on_request) <- "
                          f"{next(iter(c.op_sites)).split(' <- ')[1]}": 1}


def test_memory_pool_counts_live_arrays_in_512_byte_blocks():
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    x = cp.zeros(3, np.float32)  # 12 bytes: one block
    y = cp.empty((1000,), np.float64)  # 8000 bytes: 16 blocks
    assert pool.used_bytes() - before == 512 + 8192
    assert pool.total_bytes() >= pool.used_bytes()
    v = y[10:]
    del x, y
    assert pool.used_bytes() - before == 8192  # y lives on in its view
    del v
    assert pool.used_bytes() == before
    free, total = cp.cuda.runtime.memGetInfo()
    assert total - free >= pool.total_bytes()


def test_cuda_runtime_device_and_events():
    rt = cp.cuda.runtime
    assert rt.getDeviceCount() == 1 and cp.cuda.Device().id == 0
    props = rt.getDeviceProperties(0)
    assert b"stand-in" in props["name"] and props["major"] >= 7
    assert rt.runtimeGetVersion() >= 12000 and len(cp.cuda.nvrtc.getVersion()) == 2
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    end.record()
    end.synchronize()
    assert cp.cuda.get_elapsed_time(start, end) >= 0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device"):
        cp.cuda.Device(1)


# -- RawModule and RawKernel --------------------------------------------------------------------

@pytest.fixture(scope="module")
def saxpy():
    path = kernels.family_path("selftest")
    return cp.RawModule(code=kernels.source(path), options=kernels.options()).get_function(
        "selftest_saxpy")


def test_a_real_kernel_runs_through_rawmodule(saxpy, rng):
    n = 1000
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    xd, yd = cp.asarray(x), cp.asarray(y)
    with cupy_standin.counting() as c:
        saxpy(((n + 255) // 256,), (256,), (xd, yd, np.float32(2.5), np.int64(n)))
    assert (c.launches, c.syncs) == (1, 0)
    np.testing.assert_allclose(yd.get(), ref.selftest_saxpy(x, y, 2.5), rtol=1e-6)
    # a NumPy array of size one is passed by value, as CuPy passes it
    saxpy((4,), (256,), (xd, yd, np.array([0.0], np.float32), np.int64(n)))


@pytest.mark.parametrize("args, error", [
    (lambda x: (x, x, 2.5, np.int64(8)), r"Python float 2\.5; CuPy would pass it as float64"),
    (lambda x: (x, x, np.float32(1), 8), r"Python int 8; CuPy would pass it as int64"),
    (lambda x: (x, np.ones(8, np.float32), np.float32(1), np.int64(8)),
     re.escape("You are trying to pass a numpy.ndarray of shape (8,) as a kernel parameter")),
    (lambda x: (x, x, x, np.int64(8)), "a device array where the kernel takes a value"),
    (lambda x: (x, np.float32(0), np.float32(1), np.int64(8)), "the kernel takes a pointer"),
    (lambda x: (x, x, np.float64(1), np.int64(8)), r"np\.float64"),
    (lambda x: (x, x, np.float32(1)), "takes 4 arguments, got 3"),
], ids=["python-float", "python-int", "host-array", "array-for-value", "value-for-pointer",
        "wrong-width", "count"])
def test_kernel_arguments_follow_cupys_rules_strictly(saxpy, args, error):
    x = cp.zeros(8, np.float32)
    with pytest.raises(TypeError, match=error):
        saxpy((1,), (256,), args(x))


def test_launch_geometry_and_options_must_be_tuples(saxpy):
    x = cp.zeros(8, np.float32)
    args = (x, x, np.float32(1), np.int64(8))
    with pytest.raises(TypeError, match=r"Argument 'grid' has incorrect type \(expected tuple"):
        saxpy([1], (256,), args)
    with pytest.raises(TypeError, match=r"Argument 'block' has incorrect type"):
        saxpy((1,), 256, args)
    with pytest.raises(TypeError, match=r"Argument 'options' has incorrect type \(expected "
                                        r"tuple, got list\)"):
        cp.RawModule(code="", options=["-DX=1"])


# -- the API table: nothing the real CuPy lacks --------------------------------------------------

TABLE = json.loads(make_api_table.TABLE.read_text())["objects"]


def _standin_names() -> list[tuple[str, object]]:
    """(cupy.<dotted name>, object) of every public name of the stand-in's modules and of
    the members of its classes."""
    out = []
    for mod_name, mod in cupy_standin.modules().items():
        for name, obj in vars(mod).items():
            if name.startswith("_"):
                continue
            out.append((f"{mod_name}.{name}", obj))
            if isinstance(obj, type) and obj.__module__.startswith(("cupy_standin", "cupy")) \
                    and obj is not cp.ufunc:
                for member, raw in vars(obj).items():
                    if not member.startswith("_") or member == "__call__":
                        out.append((f"{mod_name}.{name}.{member}", raw))
    return out


def _kind(p: inspect.Parameter) -> str:
    return make_api_table._KIND[p.kind]


def incompatibilities(mine: inspect.Signature, theirs: list, documented: list | None) -> list:
    """How a call the stand-in accepts could be one CuPy refuses (or reads otherwise)."""
    problems = []
    by_name = {p[0]: p for p in theirs}
    by_name.update({p[0]: p for p in documented or [] if p[0] not in by_name})
    positional = [p[0] for p in theirs if p[1] in ("positional_only", "positional_or_keyword")]
    var_pos = any(p[1] == "var_positional" for p in theirs)
    i = 0
    for p in mine.parameters.values():
        kind = _kind(p)
        if kind == "var_positional":
            if not var_pos:
                problems.append(f"*{p.name}: CuPy takes no variable positional arguments")
            continue
        if kind == "var_keyword":
            problems.append(f"**{p.name}: the stand-in must name each keyword it takes")
            continue
        theirs_p = by_name.get(p.name)
        if kind in ("positional_only", "positional_or_keyword"):
            if i < len(positional) and positional[i] != p.name:
                problems.append(f"{p.name}: positional {i} is {positional[i]!r} in CuPy")
            elif i >= len(positional) and not var_pos:
                problems.append(f"{p.name}: CuPy takes {len(positional)} positional arguments")
            i += 1
        if kind in ("positional_or_keyword", "keyword_only"):
            if theirs_p is None:
                problems.append(f"{p.name}: no such keyword in CuPy")
                continue
            if theirs_p[1] == "positional_only":
                problems.append(f"{p.name}: positional only in CuPy")
        if p.default is not inspect.Parameter.empty and theirs_p is not None:
            want = theirs_p[2]
            got = make_api_table.normalize_default(repr(p.default))
            if want is None:
                problems.append(f"{p.name}: a default ({got}) where CuPy requires it")
            elif got != want:
                problems.append(f"{p.name}: default {got}, CuPy's is {want}")
    return problems


def _signature(obj):
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        return None
    if isinstance(obj, cp.ufunc) or not callable(obj):
        return None
    if isinstance(obj, type) and obj.__module__ == "numpy":
        return None  # NumPy's own types, re-exported as CuPy does
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def test_api_table_is_cupy_14_2():
    table = json.loads(make_api_table.TABLE.read_text())
    assert table["cupy_version"] == make_api_table.CUPY_VERSION == "14.2.0"
    assert len(table["objects"]) > 900


# the stand-in's own names: its marker (code that must tell it from CuPy reads it)
STANDIN_ONLY = ("cupy.IS_STANDIN",)


def test_every_standin_name_exists_in_cupy():
    missing = [name for name, _ in _standin_names()
               if name not in TABLE and name not in STANDIN_ONLY]
    assert not missing, f"the stand-in has names CuPy 14.2 lacks: {missing}"


# classes only the stand-in makes (CuPy makes its own): their constructors are not API
MADE_INTERNALLY = ("cupy.ufunc", "cupy.cuda.MemoryPointer")


def test_every_standin_signature_is_compatible_with_cupys():
    problems = {}
    for name, obj in _standin_names():
        if name in MADE_INTERNALLY:
            continue
        entry = TABLE.get(name, {})
        if isinstance(obj, cp.ufunc):
            if entry.get("kind") != "ufunc" or entry.get("nin") != obj.nin:
                problems[name] = [f"a ufunc of {obj.nin} inputs; CuPy: {entry}"]
            continue
        sig = _signature(obj)
        if sig is None or entry.get("params") is None:
            continue
        found = incompatibilities(sig, entry["params"], entry.get("documented_params"))
        if found:
            problems[name] = found
    assert not problems, "\n".join(f"{n}: {'; '.join(p)}" for n, p in problems.items())


def test_ufunc_keywords_are_cupys():
    mine = {p for p in inspect.signature(cp.ufunc.__call__).parameters if p not in
            ("self", "args")}
    for name in ("exp", "maximum", "isfinite"):
        theirs = {p[0] for p in TABLE[f"cupy.{name}"]["params"] if p[1] != "positional_only"}
        assert mine <= theirs, f"cupy.{name} takes {theirs}, the stand-in {mine}"


def test_signature_check_finds_what_cupy_would_refuse():
    def f(a, axis=None, initial=0, *, where=True):
        pass

    theirs = TABLE["cupy.sum"]["params"]
    found = incompatibilities(inspect.signature(f), theirs, None)
    assert any("initial" in p for p in found) and any("where" in p for p in found)


def _real_cupy_spec():
    """The installed CuPy (not the stand-in, which may sit in sys.modules as `cupy`)."""
    return importlib.machinery.PathFinder.find_spec("cupy")


@pytest.mark.skipif(_real_cupy_spec() is None, reason="CuPy is not installed (CI checks the "
                    "table in a venv with cupy-cuda12x; see .ci/run)")
def test_api_table_matches_the_installed_cupy():
    env = {k: v for k, v in os.environ.items() if k != cupy_standin.ENV_VAR}
    run = subprocess.run([sys.executable, str(TESTS / "cupy_standin" / "make_api_table.py"),
                          "--check"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode in (0, 2), run.stdout + run.stderr  # 2: another CuPy release
    if run.returncode == 2:
        pytest.skip(run.stderr.strip())


# -- wiring ---------------------------------------------------------------------------------------

def test_cuda_is_the_automatic_choice_under_the_standin(tmp_path):
    """SPLAT_LION_TEST_STANDIN=1 (conftest.py) with SPLAT_LION_BACKEND unset: cuda, on the
    stand-in, chosen by the probe as on a machine with a GPU."""
    code = ("import cupy_standin, warnings; cupy_standin.install(); import splat_lion, cupy; "
            "warnings.simplefilter('error'); be = splat_lion.get_backend(); "
            "print(be.name, be.xp is cupy, cupy.__version__)")
    env = {k: v for k, v in os.environ.items() if k != "SPLAT_LION_BACKEND"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=TESTS, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["cuda", "True", cupy_standin.VERSION]
