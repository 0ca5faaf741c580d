"""Write (or check) cupy_api.json: the signatures of the real CuPy API the stand-in mimics.

    python -m pip install numpy cupy-cuda12x==14.2.0     # in a scratch venv; no GPU needed
    python tests/cupy_standin/make_api_table.py           # writes tests/cupy_standin/cupy_api.json
    python tests/cupy_standin/make_api_table.py --check   # exit 1 if the file differs

Run it with a real CuPy, never with the stand-in (it refuses one). It imports nothing from
splat_lion or the stand-in, so it runs in a venv that has only NumPy and CuPy.

What it records, under "objects" by dotted name: every public name of the modules in MODULES
and every public member of the classes in CLASSES, each as
    {"kind": "function" | "ufunc" | "class" | "method" | "attribute" | "module" | "value",
     "params": [[name, kind, default, cython_type], ...] (callables whose signature is known),
     "from": "inspect" | "docstring", "nin": n (ufuncs),
     "documented_params": [...] (a function taking **kwargs whose docstring opens with its
                                 signature, e.g. einsum's dtype and optimize)}
where a parameter's kind is "positional_only", "positional_or_keyword", "var_positional",
"keyword_only" or "var_keyword", its default the repr of the default (None: none), its type
the Cython type the docstring names (e.g. "tuple" for RawModule's options: a list is refused).
Signatures come from inspect.signature where it works, else from the first line of the
docstring that Cython writes for compiled functions ("RawModule(str code=None, *, ...)").
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("cupy_api.json")
# the CuPy release the table is made from (CI installs this one to check it)
CUPY_VERSION = "14.2.0"
MODULES = ("cupy", "cupy.linalg", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.nvrtc")
# classes whose members are recorded too (others: only their constructor)
CLASSES = ("cupy.ndarray", "cupy.RawModule", "cupy.RawKernel", "cupy.cuda.Device",
           "cupy.cuda.Event", "cupy.cuda.MemoryPool", "cupy.cuda.MemoryPointer",
           "cupy.cuda.Stream")

_KIND = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}


def normalize_default(text: str) -> str:
    """One spelling per default: "<class 'float'>" (inspect) and "float" (docstrings) alike."""
    m = re.fullmatch(r"<class '(?:builtins\.)?([\w.]+)'>", text)
    return m.group(1) if m else text


def params_from_signature(sig: inspect.Signature) -> list:
    out = []
    for p in sig.parameters.values():
        default = None if p.default is inspect.Parameter.empty else normalize_default(
            repr(p.default))
        out.append([p.name, _KIND[p.kind], default, None])
    return out


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def params_from_text(inner: str) -> list:
    """Parameters of a Cython docstring signature: "str code=None, *, tuple options=()"."""
    out, kind = [], "positional_or_keyword"
    for part in _split_top_level(inner.replace("\\*", "*")):
        if part == "/":
            for p in out:
                p[1] = "positional_only"
            continue
        if part == "*":
            kind = "keyword_only"
            continue
        if part.startswith("**"):
            out.append([part[2:].strip(), "var_keyword", None, None])
            continue
        if part.startswith("*"):
            out.append([part[1:].strip(), "var_positional", None, None])
            kind = "keyword_only"
            continue
        lhs, _, default = part.partition("=")
        words = lhs.replace(":", " ").split()
        name, ctype = words[-1], (" ".join(words[:-1]) or None)
        out.append([name, kind, normalize_default(default.strip()) if default else None, ctype])
    return out


def params_from_doc(doc: str | None, names: tuple[str, ...] | None) -> list | None:
    """The signature Cython writes at the top of a compiled function's docstring, a line
    "NAME(...)" with NAME in `names` (None: the first line, whatever its name: a ufunc's
    docstring names the ufunc it aliases); of several such lines, the last one without
    **kwargs (RawKernel.__call__ documents its keywords in a second line)."""
    found = []
    lines = (doc or "").splitlines()
    for line in lines[:1] if names is None else lines[:12]:
        m = re.match(r"^\s*(?:[\w.]+\.)?(\w+)\((.*)\)\s*(?:->.*)?$", line)
        if m and (names is None or m.group(1) in names):
            found.append(params_from_text(m.group(2)))
    if not found:
        return None
    plain = [f for f in found if not any(p[1] == "var_keyword" for p in f)]
    return (plain or found)[-1]


def describe(obj, *, member: bool = False) -> dict:
    import numpy

    if inspect.ismodule(obj):
        return {"kind": "module"}
    if type(obj).__name__ == "ufunc" and hasattr(obj, "nin") and not isinstance(obj,
                                                                               numpy.ufunc):
        return {"kind": "ufunc", "nin": obj.nin, "params": params_from_doc(obj.__doc__, None),
                "from": "docstring"}
    if isinstance(obj, numpy.ufunc):  # NumPy's own, re-exported
        return {"kind": "numpy_ufunc", "nin": obj.nin}
    if isinstance(obj, type):
        kind = "class"
    elif callable(obj):
        kind = "method" if member else "function"
    elif type(obj).__name__ in ("getset_descriptor", "member_descriptor", "property"):
        return {"kind": "attribute"}
    else:
        return {"kind": "value", "type": type(obj).__name__}
    name = getattr(obj, "__name__", "")
    names = (name, "__init__") if kind == "class" else (name,)
    try:
        params, source = params_from_signature(inspect.signature(obj)), "inspect"
    except (ValueError, TypeError):
        params, source = None, "none"
    # a class taking (*args, **kwargs): its docstring says what it takes (cupy.ndarray)
    vague = params is not None and {"var_positional", "var_keyword"} <= {p[1] for p in params}
    if params is None or (kind == "class" and vague):
        documented = params_from_doc(getattr(obj, "__doc__", None), names)
        if documented is not None or params is None:
            params, source = documented, "docstring"
    entry = {"kind": kind, "params": params, "from": source}
    if source == "inspect" and any(p[1] == "var_keyword" for p in params):
        # a Python function taking **kwargs: the keywords its docstring documents
        documented = params_from_doc(getattr(obj, "__doc__", None), names)
        if documented is not None:
            entry["documented_params"] = documented
    if params is None:
        entry.pop("params")
        entry["from"] = "none"
    return entry


def resolve(dotted: str):
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for p in parts[1:]:
        obj = getattr(obj, p)
    return obj


def make_table() -> dict:
    import cupy
    import numpy

    if getattr(cupy, "IS_STANDIN", False):
        raise SystemExit("make_api_table.py: this is the stand-in, not CuPy; run it in a venv "
                         "with cupy-cuda12x installed and without the stand-in")
    objects = {}
    for mod_name in MODULES:
        mod = resolve(mod_name)
        for name in sorted(dir(mod)):
            if name.startswith("_"):
                continue
            try:
                objects[f"{mod_name}.{name}"] = describe(getattr(mod, name))
            except Exception as e:  # a lazy attribute that needs a GPU
                objects[f"{mod_name}.{name}"] = {"kind": "unreadable", "error": type(e).__name__}
    for cls_name in CLASSES:
        cls = resolve(cls_name)
        objects[cls_name] = describe(cls)
        for name in sorted(dir(cls)):
            if name.startswith("_") and name != "__call__":  # the class entry has __init__'s
                continue
            raw = inspect.getattr_static(cls, name)
            if isinstance(raw, (staticmethod, classmethod)):
                raw = getattr(cls, name)
            objects[f"{cls_name}.{name}"] = describe(raw, member=True)
    return {"cupy_version": cupy.__version__, "numpy_version": numpy.__version__,
            "note": "made by tests/cupy_standin/make_api_table.py; do not edit by hand",
            "objects": objects}


def dumps(table: dict) -> str:
    """JSON with one line per object, so a new CuPy's changes read as a short diff."""
    head = {k: v for k, v in table.items() if k != "objects"}
    lines = [json.dumps(head, sort_keys=True)[:-1] + ', "objects": {']
    items = sorted(table["objects"].items())
    for i, (name, entry) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f" {json.dumps(name)}: {json.dumps(entry, sort_keys=True)}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed table instead of writing it")
    ap.add_argument("--out", type=Path, default=TABLE)
    args = ap.parse_args(argv)
    table = make_table()
    if table["cupy_version"] != CUPY_VERSION:
        print(f"make_api_table.py: CuPy {table['cupy_version']} is installed; the table is made "
              f"from {CUPY_VERSION} (pip install cupy-cuda12x=={CUPY_VERSION})", file=sys.stderr)
        return 2
    text = dumps(table)
    if args.check:
        old = json.loads(args.out.read_text())
        new = json.loads(text)
        diff = sorted(k for k in set(old["objects"]) | set(new["objects"])
                      if old["objects"].get(k) != new["objects"].get(k))
        if diff or old["cupy_version"] != new["cupy_version"]:
            print(f"{args.out}: differs from the installed CuPy {new['cupy_version']} in "
                  f"{len(diff)} entries: {', '.join(diff[:20])}; regenerate it with "
                  "python tests/cupy_standin/make_api_table.py", file=sys.stderr)
            return 1
        print(f"{args.out}: matches CuPy {new['cupy_version']} ({len(new['objects'])} entries)")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(table['objects'])} entries from CuPy {table['cupy_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
