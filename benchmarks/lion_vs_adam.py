"""The Lion-vs-Adam study (issue 15): both optimizers tuned the same way, then compared at
equal rendered views on the capture suite, over seeds.

    python benchmarks/lion_vs_adam.py --deadline 16:05        # the study (resumes from --runs)
    python benchmarks/lion_vs_adam.py --report                # tables, JSON and plots only
    python benchmarks/lion_vs_adam.py --quick                 # a smoke run (tests use it)

Every run fits one start (the capture's points by default) for --views rendered views and
appends one JSON line to --runs as it finishes (held-out PSNR/SSIM, PSNR against views,
splats, optimizer state bytes, seconds); a run already there is not run again, so a study
that stopped goes on where it was. The plan, the same for both optimizers, from each one's
preset (Adam: LrTable.adam_3dgs on 1e-3; Lion: LrTable.lion_default on 1e-4):
  search, on the first scene and seed 0, keeping a change that gains more than KEEP dB:
    1. per attribute group (GROUPS), one pass: its rates x2, else x0.5;
    2. decay shape: the preset's other shape (constant, or log-linear to DECAY x; means keep
       their preset decay);
    3. betas (BETAS); 4. weight decay (Lion, WEIGHT_DECAYS);
    5. batch sizes (BATCHES, FitConfig.batch_size) at equal views, base lr x1 and x sqrt(B);
    6. Lion variants, one run each: "cautious" (no update where sign(c) disagrees with the
       gradient's sign; the kernel's Lion(cautious=True)) and per-group betas (StudyLion, in
       NumPy), never kept here;
    7. a second pass over the groups the first moved (the same factor once more);
    8. the batch table: every batch size at x1 and x sqrt(B) at the best rates;
  (the order run: batch 4 first, then 1, the other batches, 3, 2, 6, 4, 7, 8)
  second round (--round2), on EVERY scene at seed 0, judged by the mean over the scenes:
    ROUND2's changes from each best, the same kinds for both: cautious (Adam's in NumPy,
    StudyAdam), colours x2 and x0.5, one more decay end;
  final: each optimizer's best and Lion's with bf16 momentum, on every scene and --seeds
    (--final-cautious: also Lion's best the other way, cautious or plain); then, with
    --random, from a random start (seed 0).
The search stops early when the final runs would not otherwise fit before --deadline.
--bests JSON skips the search and the second round: the final runs at that study's bests
(e.g. --views 3000 into another --runs log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from bench_common import RESULTS_DIR, OtherLoad, result_fields, write_result

import splat_lion as sl
from splat_lion.densify import DensifyConfig
from splat_lion.errors import DivergenceError, NonFiniteError
from splat_lion.optim import ADAM_3DGS_LR, LION_DEFAULT_LR, LrTable
from splat_lion.problem import ProblemConfig, load_problem

# attribute groups of the coordinate search, and their attributes
GROUPS = {"means": ("means",), "scales": ("scales",), "quats": ("quats",),
          "opacities": ("opacities",), "colours": ("sh0", "shN")}
GROUP_ATTRS = tuple(a for attrs in GROUPS.values() for a in attrs)
# the order the coordinate search visits the groups in
GROUP_ORDER = ("means", "opacities", "scales", "colours", "quats")
# a search step's change is kept when it gains more than this (dB, held-out PSNR)
KEEP = 0.05
# factors tried per group: the first, and the second only when the first did not help
FACTORS = (2.0, 0.5)
# a decaying rate ends at this fraction of its start (means keep their preset's decay)
DECAY = 0.1
# (beta1, beta2) tried besides the preset's
BETAS = {"lion": ((0.95, 0.98),), "adam": ((0.95, 0.98),)}
WEIGHT_DECAYS = (0.1,)
# batch sizes tried besides 1, in the order they are tried
BATCHES = (4, 8, 2)
# the second round (--round2): changes tried from each optimizer's best on EVERY scene at seed
# 0, kept when the mean over the scenes gains more than KEEP: (group or "decay" or "cautious",
# factor or decay end); the same kinds for both optimizers, one more point on each axis
ROUND2 = {"lion": (("cautious", True), ("colours", 2.0), ("colours", 0.5), ("decay", 0.03)),
          "adam": (("cautious", True), ("colours", 2.0), ("colours", 0.5), ("decay", 0.3))}
# rendered views between held-out evaluations (the curves of PSNR against views)
EVAL_VIEWS = 100
HAS_BATCH = "batch_size" in {f.name for f in fields(sl.FitConfig)}


@dataclass(frozen=True)
class Setting:
    # "adam" or "lion"
    optimizer: str
    # attribute group -> multiplier on the preset's rates, as sorted pairs
    mults: tuple = tuple((g, 1.0) for g in GROUPS)
    # rates other than means' decay log-linearly to this fraction of their start; None: constant
    decay: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    # views per optimizer step (FitConfig.batch_size)
    batch: int = 1
    # multiplier on the base lr that goes with the batch size
    batch_lr: float = 1.0
    # Lion: "float32" or "bfloat16" momentum
    momentum: str = "float32"
    # Lion variants (StudyLion): skip updates whose sign disagrees with the gradient's
    cautious: bool = False
    # Lion variants: (group, beta1, beta2) replacing the betas for those groups
    group_betas: tuple = ()
    # 3DGS's opacity resets where the schedule has room for them (runs of 1250+ views);
    # False: none (the key leaves it out while True: the log's older runs keep their keys)
    opacity_reset: bool = True

    @classmethod
    def preset(cls, optimizer: str) -> "Setting":
        return cls(optimizer, decay=DECAY, beta2=0.99) if optimizer == "lion" else cls(optimizer)

    def mult(self, group: str) -> float:
        return dict(self.mults)[group]

    def with_mult(self, group: str, factor: float) -> "Setting":
        return replace(self, mults=tuple((g, m * factor if g == group else m)
                                         for g, m in self.mults))

    def label(self) -> str:
        """What differs from the preset, short."""
        base = Setting.preset(self.optimizer)
        parts = [f"{g} x{m:g}" for g, m in self.mults if m != 1.0]
        if self.decay != base.decay:
            parts.append("constant" if self.decay is None else f"decay {self.decay:g}")
        if (self.beta1, self.beta2) != (base.beta1, base.beta2):
            parts.append(f"betas {self.beta1:g}/{self.beta2:g}")
        if self.weight_decay:
            parts.append(f"wd {self.weight_decay:g}")
        if self.batch > 1:
            parts.append(f"B {self.batch} lr x{self.batch_lr:.3g}")
        if self.momentum != "float32":
            parts.append("bf16")
        if self.cautious:
            parts.append("cautious")
        parts += [f"{g} betas {b1:g}/{b2:g}" for g, b1, b2 in self.group_betas]
        if not self.opacity_reset:
            parts.append("no opacity reset")
        return f"{self.optimizer} " + (", ".join(parts) or "preset")


def lr_table(s: Setting, extent: float, steps: int) -> LrTable:
    """The setting's table: its preset's entries times each group's multiplier; every rate
    but means' decays log-linearly to s.decay x its start over `steps` (or stays constant)."""
    preset = (LrTable.lion_default if s.optimizer == "lion" else LrTable.adam_3dgs)(extent, steps)
    group_of = {a: g for g, attrs in GROUPS.items() for a in attrs}
    entries = {}
    for name, e in preset.entries:
        m = s.mult(group_of[name])
        if name == "means":
            final = None if e.final_scale is None else e.final_scale * m
        else:
            final = None if s.decay is None else e.scale * m * s.decay
        entries[name] = replace(e, scale=e.scale * m, final_scale=final, decay_steps=steps)
    return LrTable(entries, extent=extent, note=s.label())


@dataclass(frozen=True, eq=False)
class StudyLion(sl.Lion):
    """Lion in NumPy over the flat buffers (the study's variants; the kernel is lion.cu):
    c = b1*m + (1-b1)*g;  u = sign(c), zeroed where cautious and sign(c) != sign(g);
    p -= lr*(u + wd*p);  m = b2*m + (1-b2)*g, for visible splats only; b1, b2 per group."""

    # skip the update of a coordinate whose sign(c) disagrees with its gradient's sign
    cautious: bool = field(default=False, kw_only=True)
    # (group, beta1, beta2) replacing beta1 and beta2 for that group's attributes
    group_betas: tuple = field(default=(), kw_only=True)

    def _launch(self, be, params, grads, states, segments, hyper, visible, count, nonfinite,
                step) -> None:
        xp = be.xp
        betas = {a: (b1, b2) for g, b1, b2 in self.group_betas for a in GROUPS[g]}
        names = self.state.flat_layout.names
        for (begin, end, width), (lr, wd), name in zip(segments.tolist(), hyper.tolist(), names):
            if end == begin:
                continue
            b1, b2 = (np.float32(b) for b in betas.get(name, (self.beta1, self.beta2)))
            rows = slice(None) if visible is None else visible
            p, g = params[begin:end].reshape(-1, width), grads[begin:end].reshape(-1, width)
            m = states["momentum"][begin:end].reshape(-1, width)
            pv, gv, mv = p[rows], g[rows], m[rows]
            u = xp.sign(b1 * mv + (1 - b1) * gv)
            if self.cautious:
                u *= (u * gv) > 0
            p[rows] = pv - np.float32(lr) * (u + np.float32(wd) * pv)
            m[rows] = b2 * mv + (1 - b2) * gv


@dataclass(frozen=True, eq=False)
class StudyAdam(sl.Adam):
    """Adam's kernel step (reference/adam.py, in NumPy), made cautious as Lion's variant: no
    update of a coordinate whose step m_hat/(sqrt(v_hat)+eps) disagrees with its gradient's
    sign (or where g = 0); the moments update as Adam's (C-AdamW, Liang et al. 2024, without
    their rescaling). The fair twin of cautious Lion."""

    def _launch(self, be, params, grads, states, segments, hyper, visible, count, nonfinite,
                step) -> None:
        from splat_lion.reference.adam import adam_step

        m, v = states["exp_avg"], states["exp_avg_sq"]
        new_p, m[...], v[...] = adam_step(params, grads, m, v, segments, hyper, self.beta1,
                                          self.beta2, self.eps, count, visible)
        params[...] = np.where((params - new_p) * grads > 0, new_p, params)


def make_optimizer(s: Setting, extent: float, steps: int, be):
    table = lr_table(s, extent, steps)
    if s.optimizer == "adam":
        cls = StudyAdam if s.cautious else sl.Adam
        return cls(ADAM_3DGS_LR * s.batch_lr, s.beta1, s.beta2, lr_table=table, backend=be)
    lr = LION_DEFAULT_LR * s.batch_lr
    if s.group_betas:
        return StudyLion(lr, s.beta1, s.beta2, s.weight_decay, lr_table=table, backend=be,
                         cautious=s.cautious, group_betas=s.group_betas)
    return sl.Lion(lr, s.beta1, s.beta2, s.weight_decay, lr_table=table, backend=be,
                   momentum_dtype=s.momentum, cautious=s.cautious)


def densify_for(views: int, batch: int, max_splats: int | None) -> DensifyConfig:
    """3DGS's schedule compressed into `views` rendered views (DensifyConfig.for_steps), its
    opacity resets compressed too, as the library did when the study ran (every views / 10
    views where 5 densifications fit between two; RESET_VIEWS now), counted in optimizer steps
    of `batch` views: densification at the same views for every batch."""
    d = DensifyConfig.for_steps(views, max_splats=max_splats)
    reset = round(views / 10)
    d = replace(d, reset_interval=reset if reset >= 5 * d.interval else None)
    if batch == 1:
        return d

    def per(n: int) -> int:
        return max(1, round(n / batch))

    return replace(d, start_step=per(d.start_step), stop_step=per(d.stop_step),
                   interval=per(d.interval),
                   reset_interval=None if d.reset_interval is None else per(d.reset_interval))


# -- the runs and their log ---------------------------------------------------------------

class Study:
    """The runs of one study: problems loaded once each, rows cached in the JSON-lines log."""

    def __init__(self, args, be) -> None:
        self.args, self.be = args, be
        self.rows: dict[str, dict] = {}
        self.problems: dict = {}
        self.capture_dir = args.captures
        if args.runs.exists():
            for line in args.runs.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["key"]] = row
        # the search was cut short (Search.affordable)
        self.cut = False

    def problem(self, scene: str, init: str, seed: int):
        key = (scene, init, seed)
        if key not in self.problems:
            self.problems.clear()  # one at a time: the memory stays small
            a = self.args
            if scene in suite_names():
                from capture_suite import make_capture
                folder = make_capture(scene, self.capture_dir, size=a.size)  # made once
                config = ProblemConfig(init=init, seed=seed)
            else:
                folder = scene
                config = ProblemConfig(resolution=a.size, views=a.scene_views, init=init,
                                       seed=seed, orbit_radius=a.radius)
            self.problems[key] = load_problem(folder, config, backend=self.be)
        return self.problems[key]

    def key(self, scene: str, init: str, seed: int, s: Setting) -> str:
        a = self.args
        setting = asdict(s)
        if s.opacity_reset:
            del setting["opacity_reset"]
        return json.dumps({"scene": scene, "init": init, "seed": seed, "views": a.views,
                           "size": a.size, "max_splats": a.max_splats, **setting},
                          sort_keys=True)

    def done(self, scene, init, seed, s: Setting) -> dict | None:
        return self.rows.get(self.key(scene, init, seed, s))

    def run(self, scene: str, init: str, seed: int, s: Setting, stage: str) -> dict | None:
        """The run's row (from the log, or fitted now and appended); None when it cannot run
        here (a batch size without FitConfig.batch_size)."""
        views = self.args.views
        key = self.key(scene, init, seed, s)
        if key in self.rows:
            return self.rows[key]
        if s.batch > 1 and not HAS_BATCH:
            print(f"  skipped {s.label()}: this FitConfig has no batch_size", flush=True)
            return None
        t_all = time.perf_counter()
        problem = self.problem(scene, init, seed)
        g = problem.fresh_start()
        steps = views // s.batch
        opt = make_optimizer(s, g.extent(), steps, self.be)
        extra = {"batch_size": s.batch} if s.batch > 1 else {}
        densify = densify_for(views, s.batch, self.args.max_splats)
        if not s.opacity_reset:
            densify = replace(densify, reset_interval=None)
        config = sl.FitConfig(optimizer=s.optimizer, steps=steps, seed=seed,
                              densify=densify if problem.from_points else None,
                              eval_every=max(1, round(EVAL_VIEWS / s.batch)),
                              log_every=max(1, round(EVAL_VIEWS / s.batch)), **extra)
        t_fit = time.perf_counter()

        def progress(step, loss, psnr):
            if step * s.batch % 200 < s.batch:  # fit calls this every log_every steps
                print(f"    {step * s.batch} views: {g.count} splats, training PSNR "
                      f"{psnr:.2f}, {time.perf_counter() - t_fit:.0f} s", flush=True)

        eval_s = [0.0]

        def evaluate(gs):
            t0 = time.perf_counter()
            e = problem.evaluate(gs)
            eval_s[0] += time.perf_counter() - t0
            return e.psnr, e.ssim

        row = {"key": key, "stage": stage, "scene": scene, "init": init, "seed": seed,
               "views": views, "steps": steps, "label": s.label(), "setting": asdict(s),
               "start_splats": problem.start.count}
        try:
            result = sl.fit(g, problem.train_cameras, problem.train_images, config,
                            optimizer=opt, evaluate=evaluate, progress=progress)
            held = problem.evaluate(g)
            row.update(psnr=held.psnr, ssim=held.ssim, splats=g.count,
                       state_bytes=result.optimizer_state_bytes,
                       seconds=round(result.seconds - eval_s[0], 2),
                       curve=[[(st + 1) * s.batch, round(p, 3), round(q, 4)]
                              for st, p, q in result.eval_history], error=None)
        except (DivergenceError, NonFiniteError) as e:
            row.update(psnr=None, ssim=None, splats=g.count, state_bytes=None, seconds=None,
                       curve=[], error=str(e))
        row["run_seconds"] = round(time.perf_counter() - t_all, 2)
        self.rows[key] = row
        with self.args.runs.open("a") as f:
            f.write(json.dumps(row) + "\n")
        shown = "diverged" if row["psnr"] is None else (
            f"PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  {row['splats']:>6} splats  "
            f"{row['seconds']:6.1f} s")
        print(f"  [{stage}] {scene} seed {seed} {init}: {s.label():<44} {shown}", flush=True)
        return row

    def run_seconds(self) -> float:
        """A run's typical wall time (the median of this log's runs; 60 s before any)."""
        times = [r["run_seconds"] for r in self.rows.values() if r.get("run_seconds")]
        return float(np.median(times)) if times else 60.0

    def time_left(self) -> float:
        d = self.args.deadline
        return math.inf if d is None else (d - dt.datetime.now(dt.timezone.utc)).total_seconds()


def suite_names() -> tuple[str, ...]:
    try:
        from capture_suite import SUITE
    except ImportError:
        return ()
    return tuple(SUITE)


def suite_version() -> str | None:
    """sha256 (first 12 hex digits) of capture_suite.py, which makes the scenes."""
    import hashlib

    path = Path(__file__).with_name("capture_suite.py")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else None


def score(row: dict | None) -> float:
    return -math.inf if row is None or row["psnr"] is None else row["psnr"]


# -- the plan --------------------------------------------------------------------------------

class Search:
    """One optimizer's coordinate search: `best` and its row, improved stage by stage."""

    def __init__(self, study: Study, optimizer: str, scene: str, init: str,
                 reserve: callable) -> None:
        self.study, self.scene, self.init, self.reserve = study, scene, init, reserve
        self.best = Setting.preset(optimizer)
        self.best_row = None
        # group -> the factor the first pass kept
        self.moved: dict[str, float] = {}

    def affordable(self) -> bool:
        """Whether a search run (and its twin of the other optimizer) leaves time for the runs
        reserved after them; once not, no search run of either optimizer is (study.cut)."""
        st = self.study
        if st.cut:
            return False
        if st.time_left() > st.run_seconds() * (2 + self.reserve()):
            return True
        print(f"  search cut: {st.time_left() / 60:.0f} min left, the final runs need "
              f"{st.run_seconds() * self.reserve() / 60:.0f}", flush=True)
        st.cut = True
        return False

    def try_(self, s: Setting, stage: str) -> bool:
        """Run `s`; keep it as the best when it gains more than KEEP dB."""
        cached = self.study.done(self.scene, self.init, 0, s)
        if cached is None and not self.affordable():
            return False
        row = self.study.run(self.scene, self.init, 0, s, stage)
        if row is not None and score(row) > score(self.best_row) + KEEP:
            self.best, self.best_row = s, row
            return True
        return False

    def start(self) -> None:
        self.best_row = self.study.run(self.scene, self.init, 0, self.best, "preset")

    def group(self, group: str) -> None:
        for factor in FACTORS:
            if self.try_(self.best.with_mult(group, factor), f"rates {group}"):
                self.moved[group] = factor
                return

    def again(self) -> None:
        """The second pass: each group the first moved, once more by the same factor."""
        for group, factor in list(self.moved.items()):
            self.try_(self.best.with_mult(group, factor), f"rates {group}, again")

    def batch_table(self) -> None:
        """Every batch size at base lr x1 and x sqrt(B) at the best rates (the batch table;
        runs made already are taken from the log)."""
        for b in (1, *sorted(BATCHES)):
            base = replace(self.best, batch=1, batch_lr=1.0)
            for lr in sorted({1.0, math.sqrt(b)}):
                self.try_(replace(base, batch=b, batch_lr=lr), "batch table")

    def across(self, s: Setting, scenes, stage: str) -> float | None:
        """Mean held-out PSNR of `s` over `scenes` at seed 0 (None: a run was cut)."""
        rows = []
        for sc in scenes:
            if self.study.done(sc, self.init, 0, s) is None and not self.affordable():
                return None
            rows.append(self.study.run(sc, self.init, 0, s, stage))
        return float(np.mean([score(r) for r in rows]))

    def round2(self, scenes) -> None:
        """ROUND2's changes from the best, each judged by its mean over every scene."""
        best = self.across(self.best, scenes, "round 2")
        for what, value in ROUND2[self.best.optimizer]:
            if what == "cautious":
                s = replace(self.best, cautious=value)
            elif what == "decay":
                s = replace(self.best, decay=value)
            else:
                s = self.best.with_mult(what, value)
            got = None if best is None else self.across(s, scenes, "round 2")
            if got is not None and got > best + KEEP:
                self.best, best = s, got
                self.best_row = self.study.done(self.scene, self.init, 0, s)

    def decay(self) -> None:
        self.try_(replace(self.best, decay=None if self.best.decay else DECAY), "decay")

    def betas(self) -> None:
        for b1, b2 in BETAS[self.best.optimizer]:
            self.try_(replace(self.best, beta1=b1, beta2=b2), "betas")

    def weight_decay(self) -> None:
        if self.best.optimizer == "lion":
            for wd in WEIGHT_DECAYS:
                self.try_(replace(self.best, weight_decay=wd), "weight decay")

    def batch(self, b: int) -> None:
        """B views a step at base lr x1 and x sqrt(B) (from the best single-view setting, or
        the best batch's rates scaled back)."""
        base = replace(self.best, batch=1, batch_lr=1.0)
        for lr in (1.0, math.sqrt(b)):
            self.try_(replace(base, batch=b, batch_lr=lr), f"batch {b}")

    def variants(self) -> None:
        """Lion's variants at the best setting (never kept as best: they have no kernel)."""
        if self.best.optimizer != "lion":
            return
        other = (0.95, 0.98) if (self.best.beta1, self.best.beta2) == (0.9, 0.99) else (0.9, 0.99)
        out = [replace(self.best, cautious=True),
               replace(self.best, group_betas=tuple((g, *other) for g in
                                                    ("means", "scales", "quats")))]
        for s in out:
            if self.study.done(self.scene, self.init, 0, s) or self.affordable():
                self.study.run(self.scene, self.init, 0, s, "variant")


def finals(best: dict[str, Setting], seed: int | None = None, bf16_seeds=None,
           cautious: bool = False) -> list[Setting]:
    """The final comparison's settings: each optimizer's best, Lion's with bf16 momentum (for
    `seed` in bf16_seeds, or always when either is None), and with `cautious` Lion's best the
    other way (cautious, or plain when its best is cautious), and Adam's plain when its best
    is cautious."""
    bf16 = seed is None or bf16_seeds is None or seed in bf16_seeds
    other = [replace(best[o], cautious=not best[o].cautious) for o in ("adam", "lion")
             if o == "lion" or best[o].cautious]
    return [best["adam"], best["lion"]] + [replace(best["lion"], momentum="bfloat16")] * bf16 \
        + other * cautious


def load_bests(path: Path) -> dict[str, Setting]:
    """Each optimizer's best setting from a study's JSON (its "best")."""
    names = {f.name for f in fields(Setting)}
    out = {}
    for o, entry in json.loads(Path(path).read_text())["best"].items():
        kw = {k: tuple(tuple(x) for x in v) if isinstance(v, list) else v
              for k, v in entry.items() if k in names}
        out[o] = Setting(**kw)
    return out


def plan(study: Study, scenes: list[str], seeds: list[int]) -> dict:
    """Search on scenes[0] (seed 0), then the final runs; returns the best settings."""
    a = study.args
    search = {}

    def reserve() -> int:  # final runs not yet in the log (at the current bests)
        best = {o: s.best for o, s in search.items()}
        return sum(study.done(sc, a.init, seed, s) is None for sc in scenes for seed in seeds
                   for s in finals(best, seed, a.bf16_seeds, a.final_cautious))

    if a.bests:  # no search: each optimizer's best from an earlier study's JSON
        return finish(study, scenes, seeds, load_bests(a.bests))
    for o in ("adam", "lion"):
        search[o] = Search(study, o, scenes[0], a.init, reserve)
        search[o].start()
    # in order of what they are expected to be worth: a cut search drops the last ones
    groups = [lambda s, g=g: s.group(g) for g in GROUP_ORDER]
    batches = [lambda s, b=b: s.batch(b) for b in BATCHES]
    stages = [batches[0], *groups, *batches[1:], Search.betas, Search.decay, Search.variants,
              Search.weight_decay, Search.again, Search.batch_table]
    if a.quick:
        stages = [batches[0], groups[0], Search.variants]
    for stage in stages:
        for o in ("adam", "lion"):  # in lockstep: a cut search has tuned both alike
            stage(search[o])
    if a.round2:
        for o in ("adam", "lion"):
            search[o].round2(scenes)
    return finish(study, scenes, seeds, {o: s.best for o, s in search.items()})


def finish(study: Study, scenes: list[str], seeds: list[int], best: dict) -> dict:
    """The final runs at the best settings, then (--random) the random starts."""
    a = study.args
    for sc in scenes:
        for seed in seeds:
            for s in finals(best, seed, a.bf16_seeds, a.final_cautious):
                study.run(sc, a.init, seed, s, "final")
    if a.random and a.init != "random":
        for sc in scenes:
            for s in finals(best)[:2]:
                if study.done(sc, "random", 0, s) or study.time_left() > 1.5 * study.run_seconds():
                    study.run(sc, "random", 0, s, "random start")
    return best


# -- tables and plots --------------------------------------------------------------------------

def mean_spread(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summary(rows: list[dict], best: dict[str, Setting], scenes, seeds, init, key,
            cautious: bool) -> list[dict]:
    """Per scene and final setting: mean and spread (sample std) over seeds; Lion's gap to
    Adam per seed (the same views and order), mean and spread."""
    index = {r["key"]: r for r in rows}
    out = []
    for sc in scenes:
        per = {}
        for s in finals(best, cautious=cautious):
            got = [index.get(key(sc, init, seed, s)) for seed in seeds]
            got = [r for r in got if r is not None and r["psnr"] is not None]
            if not got:
                continue
            per[s.label()] = got
            entry = {"scene": sc, "run": s.label(), "optimizer": s.optimizer,
                     "momentum": s.momentum, "seeds": [r["seed"] for r in got]}
            for k in ("psnr", "ssim", "splats", "seconds", "state_bytes"):
                entry[k], entry[k + "_spread"] = mean_spread([r[k] for r in got])
            out.append(entry)
        adam = {r["seed"]: r["psnr"] for r in per.get(best["adam"].label(), [])}
        for s in finals(best, cautious=cautious)[1:]:
            diffs = [r["psnr"] - adam[r["seed"]] for r in per.get(s.label(), [])
                     if r["seed"] in adam]
            if diffs:
                gap, spread = mean_spread(diffs)
                out.append({"scene": sc, "run": f"gap: {s.label()} - adam", "gap": gap,
                            "gap_spread": spread, "seeds": len(diffs)})
    return out


def rates(s: Setting, views: int) -> dict[str, list[float]]:
    """Attribute -> [lr at the first step, lr at the last] of a setting (means: x extent)."""
    steps = views // s.batch
    base = (LION_DEFAULT_LR if s.optimizer == "lion" else ADAM_3DGS_LR) * s.batch_lr
    table = lr_table(s, 1.0, steps)
    return {n: [base * table.scale(n, 0), base * table.scale(n, steps - 1)] for n in table.names}


def markdown(result: dict) -> str:
    lines = ["### Best settings (learning rates at the first and last step; means x extent)", "",
             "| optimizer | setting | " + " | ".join(GROUP_ATTRS) + " |",
             "| --- | --- |" + " ---: |" * len(GROUP_ATTRS)]
    for o, b in result["best"].items():
        lines.append(f"| {o} | {b['label']} | " + " | ".join(
            f"{b['rates'][n][0]:.2g} → {b['rates'][n][1]:.2g}" for n in GROUP_ATTRS) + " |")
    lines += ["", "### Search (scene " + result["search_scene"] + ", seed 0)", "",
              "| stage | setting | held-out PSNR (dB) | SSIM | splats | s |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in result["search"]:
        psnr = "diverged" if r["psnr"] is None else f"{r['psnr']:.2f}"
        ssim = "" if r["ssim"] is None else f"{r['ssim']:.4f}"
        secs = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(f"| {r['stage']} | {r['label']} | {psnr} | {ssim} | {r['splats']} | {secs} |")
    lines += ["", "### Final (mean ± sample std over seeds)", "",
              "| scene | run | held-out PSNR (dB) | SSIM | splats | state (MiB) | s |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for e in result["final"]:
        if "gap" in e:
            lines.append(f"| {e['scene']} | {e['run']} | {e['gap']:+.2f} ± {e['gap_spread']:.2f} "
                         f"| | | | |")
            continue
        lines.append(f"| {e['scene']} | {e['run']} | {e['psnr']:.2f} ± {e['psnr_spread']:.2f} "
                     f"| {e['ssim']:.4f} ± {e['ssim_spread']:.4f} | {e['splats']:.0f} "
                     f"| {e['state_bytes'] / 2**20:.2f} | {e['seconds']:.0f} |")
    if result["random"]:
        lines += ["", "### Random start (seed 0)", "",
                  "| scene | run | PSNR (dB) | SSIM | splats |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for r in result["random"]:
            psnr = "diverged" if r["psnr"] is None else f"{r['psnr']:.2f}"
            lines.append(f"| {r['scene']} | {r['label']} | {psnr} | {r['ssim'] or 0:.4f} "
                         f"| {r['splats']} |")
    return "\n".join(lines)


def plot(study: Study, best: dict[str, Setting], scenes, seeds, path: Path) -> None:
    """PSNR against rendered views per scene: each final setting's mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = study.args
    fig, axes = plt.subplots(1, len(scenes), figsize=(4.4 * len(scenes), 3.6), squeeze=False)
    for ax, sc in zip(axes[0], scenes):
        for s in finals(best, cautious=a.final_cautious):
            rows = [study.done(sc, a.init, seed, s) for seed in seeds]
            curves = [r["curve"] for r in rows if r is not None and r["curve"]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            views = [c[0] for c in curves[0][:n]]
            ax.plot(views, np.mean([[c[1] for c in cv[:n]] for cv in curves], axis=0),
                    label=f"{s.label()} ({len(curves)} seeds)", lw=1.4)
        ax.set_title(sc)
        ax.set_xlabel("rendered views")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("held-out PSNR (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def plot_batches(study: Study, best: dict[str, Setting], scene: str, path: Path) -> None:
    """PSNR against rendered views on the search scene (seed 0) per batch size, at each
    optimizer's best rates and, per batch size, the better of its lr scalings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.8, 3.6), sharey=True)
    for ax, o in zip(axes, ("adam", "lion")):
        base = replace(best[o], batch=1, batch_lr=1.0)
        for b in (1, *sorted(BATCHES)):
            rows = [study.done(scene, study.args.init, 0, replace(base, batch=b, batch_lr=lr))
                    for lr in sorted({1.0, math.sqrt(b)})]
            rows = [r for r in rows if r is not None and r["curve"]]
            if rows:
                r = max(rows, key=score)
                lr = r["setting"]["batch_lr"]
                ax.plot([c[0] for c in r["curve"]], [c[1] for c in r["curve"]], lw=1.4,
                        label=f"B {b}, lr x{lr:.3g}: {r['psnr']:.2f} dB")
        ax.set_title(f"{o}, {scene}, seed 0")
        ax.set_xlabel("rendered views")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("held-out PSNR (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def report(study: Study, best: dict[str, Setting], scenes, seeds) -> dict:
    a, be = study.args, study.be
    rows = list(study.rows.values())
    result = {**result_fields("lion_vs_adam", be.name, be.describe()),
              "command": "python benchmarks/lion_vs_adam.py " + " ".join(a.argv),
              "views": a.views, "size": a.size, "init": a.init, "max_splats": a.max_splats,
              "scenes": scenes, "seeds": seeds, "capture_suite": suite_version(),
              "search_scene": scenes[0], "has_batch_size": HAS_BATCH,
              "best": {o: {"label": s.label(), "rates": rates(s, a.views), **asdict(s)}
                       for o, s in best.items()},
              "search": [{k: r[k] for k in ("stage", "label", "psnr", "ssim", "splats",
                                            "seconds", "setting")}
                         for r in rows if r["stage"] not in ("final", "random start")],
              "final": summary(rows, best, scenes, seeds, a.init, study.key, a.final_cautious),
              "random": [r for r in rows if r["stage"] == "random start"],
              "runs": rows}
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", default=None,
                   help="comma-separated capture-suite or bundled scene names (default: the "
                        "capture suite; the first is searched on)")
    p.add_argument("--views", type=int, default=1000, help="rendered views per run")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the final runs")
    p.add_argument("--init", choices=("points", "random"), default="points")
    p.add_argument("--max-splats", type=int, default=None,
                   help="densification adds no splats past this many (DensifyConfig.max_splats)")
    p.add_argument("--bf16-seeds", default=None,
                   help="seeds of the final runs with bf16 momentum (default: every seed)")
    p.add_argument("--final-cautious", action="store_true",
                   help="the final runs also take Lion's best the other way (cautious or "
                        "plain), and Adam's plain when its best is cautious")
    p.add_argument("--bests", type=Path, default=None,
                   help="no search: each optimizer's best from this study JSON, then the final "
                        "runs (e.g. at other --views)")
    p.add_argument("--round2", action="store_true",
                   help="after the search, the second round (ROUND2) on every scene at seed 0")
    p.add_argument("--random", action="store_true",
                   help="after the final runs, also a random start (seed 0) if time is left")
    p.add_argument("--deadline", default=None, metavar="HH:MM",
                   help="UTC time by which every run should end (the search is cut to fit)")
    p.add_argument("--runs", type=Path, default=RESULTS_DIR / "lion-vs-adam-runs.jsonl",
                   help="JSON-lines log of the runs (read to resume, appended to)")
    p.add_argument("--captures", type=Path, default=Path(tempfile.gettempdir()) / "capture-suite",
                   help="where the capture suite's folders are made")
    p.add_argument("--scene-views", type=int, default=40, help="bundled scenes: orbit views")
    p.add_argument("--radius", type=float, default=1.6, help="bundled scenes: orbit radius")
    p.add_argument("--report", action="store_true", help="only the tables, JSON and plots")
    p.add_argument("--plot", type=Path, default=None, help="PSNR-against-views PNG")
    p.add_argument("--quick", action="store_true", help="tiny: one bundled scene, 16 views")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    a = p.parse_args(argv)
    a.argv = argv
    if a.quick:
        a.views, a.size, a.scene_views, a.seeds = 8, 24, 8, "0"
        a.scenes = a.scenes or "shapes"
        if a.runs == p.get_default("runs"):
            a.runs = Path(tempfile.mkdtemp()) / "runs.jsonl"
    if a.deadline:
        hh, mm = (int(v) for v in a.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        a.deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    scenes = a.scenes.split(",") if a.scenes else list(suite_names()) or ["knot"]
    seeds = [int(s) for s in a.seeds.split(",")]
    a.bf16_seeds = None if a.bf16_seeds is None else [int(s) for s in a.bf16_seeds.split(",")]
    be = sl.get_backend()
    load = OtherLoad()
    study = Study(a, be)
    if a.report:
        study.time_left = lambda: 0.0  # nothing new runs: every search step is cut
        study.run = lambda *args, **kw: study.done(*args[:4])
    print(f"{len(study.rows)} runs in {a.runs}; {a.views} views per run at {a.size} px, "
          f"{a.init} start; scenes {', '.join(scenes)}; seeds {seeds}; batch_size "
          f"{'available' if HAS_BATCH else 'not in FitConfig: B > 1 skipped'}", flush=True)
    best = plan(study, scenes, seeds)
    result = report(study, best, scenes, seeds)
    result["other_load"] = load.share()
    table = markdown(result)
    print("\n" + table)
    for o, s in best.items():
        print(f"best {o}: {s.label()}")
    if a.markdown:
        a.markdown.write_text(table + "\n")
    if a.plot or not a.quick:
        path = a.plot or Path(tempfile.gettempdir()) / "lion-vs-adam-views.png"
        plot(study, best, scenes, seeds, path)
        plot_batches(study, best, scenes[0], path.with_name(path.stem + "-batch.png"))
    write_result(result, f"lion-vs-adam-{a.init}", be.name, be.describe()["device"], a.quick,
                 a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
