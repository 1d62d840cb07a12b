"""The ``dse`` command line (design brief §4, a contract).

The CLI is a thin layer: this module declares every command and flag, then hands the
parsed arguments to ``dse.commands.<command>.run(args) -> dict``. With ``--json`` the dict
is printed as exactly one JSON object on stdout; otherwise ``render(result) -> str`` of the
same module prints a readable table. Progress and logs go to stderr.

Errors: one line on stderr and exit 2 for bad input/usage, 3 for "no feasible design",
1 for anything else; never a traceback (set ``DSE_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from dse.errors import NOT_WRITABLE_ERRNOS, ConfigError, DSEError
from dse.types import DISPATCHERS, RECOMPUTE, RECOMPUTE_MODULES, SCHEDULES, jsonable

OBJECTIVES = ("throughput", "perf_per_tdp")
SEARCHERS = ("wham", "optuna", "random", "exhaustive")
EXPORT_FORMATS = ("scalesim", "timeloop", "zigzag", "astrasim")


class UsageError(DSEError):
    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _recompute_modules(s: str) -> tuple[str, ...]:
    names = [m.strip() for m in s.split(",") if m.strip()]
    bad = [m for m in names if m not in RECOMPUTE_MODULES]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"{', '.join(map(repr, bad)) or 'no module given'}"
            f"{' is not a module' if bad else ''}; choose from {', '.join(RECOMPUTE_MODULES)}")
    return tuple(sorted(set(names)))


def _positive_int(name: str):  # type: ignore[no-untyped-def]
    def parse(s: str) -> int:
        # ASCII digits only: int() would also take '2_0' (20), '٣' and '４'
        if not re.fullmatch(r"\s*\+?[0-9]+\s*", s):
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {s!r}")
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {s!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {s!r}")
        return _in_range(name, v)

    return parse


def _in_range(name: str, v: Any) -> Any:
    """``v`` within the physical range of flag ``name`` (:mod:`dse.limits`)."""
    from dse.limits import RANGES, check

    if name in RANGES:
        try:
            check(name, v)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return v


def _positive_float(name: str):  # type: ignore[no-untyped-def]
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {s!r}")
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive finite number, got {s!r}")
        return _in_range(name, v)

    return parse


def _non_negative_float(name: str):  # type: ignore[no-untyped-def]
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number >= 0, got {s!r}")
        if not math.isfinite(v) or v < 0:
            raise argparse.ArgumentTypeError(f"{name} must be a finite number >= 0, got {s!r}")
        return _in_range(name, v)

    return parse


def _study_name(s: str) -> str:
    """An Optuna study name: not empty, no leading or trailing blanks (a name of blanks
    would be listed as if there were none)."""
    if not s.strip():
        raise argparse.ArgumentTypeError(f"--study must name the study, got {s!r}")
    if s != s.strip():
        raise argparse.ArgumentTypeError(f"--study {s!r} has leading or trailing blanks; "
                                         f"use {s.strip()!r}")
    return s


def _non_negative_int(name: str):  # type: ignore[no-untyped-def]
    def parse(s: str) -> int:
        if not re.fullmatch(r"\s*\+?[0-9]+\s*", s):  # ASCII digits, as _positive_int
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 0, got {s!r}")
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 0, got {s!r}")
        if v < 0:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 0, got {s!r}")
        return _in_range(name, v)

    return parse


def build_parser() -> argparse.ArgumentParser:
    def json_flag(default: Any) -> argparse.ArgumentParser:
        parent = _Parser(add_help=False)
        parent.add_argument("--json", action="store_true", default=default,
                            help="print exactly one JSON object on stdout")
        return parent

    # The subcommands take --json too, with SUPPRESS as their default so that a
    # subparser never resets the top level's value: `dse --json evaluate ...` stays JSON.
    top, common = json_flag(False), json_flag(argparse.SUPPRESS)

    p = _Parser(prog="dse", description="Accelerator design-space explorer for distributed "
                "deep-learning training.", parents=[top])
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    # workloads list|show
    w = sub.add_parser("workloads", help="list or show training workloads", parents=[common])
    wsub = w.add_subparsers(dest="action", parser_class=_Parser)
    wsub.add_parser("list", help="list the model zoo", parents=[common])
    ws = wsub.add_parser("show", help="show one workload's training graph", parents=[common])
    ws.add_argument("workload", help="zoo name, HF-style config.json path, or .onnx path")
    ws.add_argument("--batch", type=_positive_int("--batch"), default=None,
                help="samples per step (default: the workload's published global batch)")
    ws.add_argument("--seq", type=_positive_int("--seq"), default=None,
                help="tokens per sample (default: the workload's)")
    ws.add_argument("--ops", action="store_true", help="also list every operator")

    # hardware list|show
    h = sub.add_parser("hardware", help="list or show hardware presets", parents=[common])
    hsub = h.add_subparsers(dest="action", parser_class=_Parser)
    hsub.add_parser("list", help="list hardware presets", parents=[common])
    hs = hsub.add_parser("show", help="show one preset or YAML/JSON file", parents=[common])
    hs.add_argument("hardware", help="preset name or YAML/JSON file")

    # evaluate
    e = sub.add_parser("evaluate", help="evaluate one design on one workload", parents=[common])
    e.add_argument("--workload", required=True,
               help="zoo name (dse workloads list), HF config.json, or .onnx file")
    e.add_argument("--hardware", required=True,
               help="preset name (dse hardware list) or a hardware YAML/JSON file")
    _add_plan_args(e)

    # search
    s = sub.add_parser("search", help="mine the best accelerator within a budget",
                       parents=[common])
    s.add_argument("--workload", required=True, help="one workload or a comma-separated list")
    s.add_argument("--area", type=_positive_float("--area"), required=True, help="mm²")
    s.add_argument("--power", type=_positive_float("--power"), default=None, help="W (TDP)")
    s.add_argument("--objective", choices=OBJECTIVES, default="throughput",
               help="maximize samples/s (throughput) or samples/s per TDP watt (default: throughput)")
    s.add_argument("--devices", type=_positive_int("--devices"), default=1,
               help="accelerators training the workload together (default: 1)")
    s.add_argument("--searcher", choices=SEARCHERS, default="wham",
               help="search method (default: wham, the critical-path heuristic)")
    s.add_argument("--budget", type=_positive_int("--budget"), default=None,
                   help="designs to evaluate (searcher-specific default)")
    s.add_argument("--guidance", choices=("critical-path", "none", "inverted"),
                   default="critical-path",
                   help="how the wham heuristic picks its moves: from the critical path of "
                        "each design's schedule (default), from nothing (full neighbourhood "
                        "every step) or inverted (for ablation)")
    s.add_argument("--heterogeneous", action="store_true",
                   help="also search a chip per pipeline stage (WHAM's per-stage "
                        "accelerators) and report its gain over the common chip")
    s.add_argument("--top-k", type=_positive_int("--top-k"), default=5,
               help="designs kept per stage and reported (default: 5)")
    s.add_argument("--seed", type=_non_negative_int("--seed"), default=0,
               help="random seed: the same seed gives the same result (default: 0)")
    s.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the "
                   "run directory)")
    s.add_argument("--study", type=_study_name, default=None, help="Optuna study name")
    s.add_argument("--out", default=None, help="run directory (default results/<time>-<workload>)")
    s.add_argument("--jobs", type=_positive_int("--jobs"), default=1,
                   help="worker processes on this machine (journal-file storage)")
    s.add_argument("--batch", type=_positive_int("--batch"), default=None,
               help="global batch, samples per step (default: the workload's published one)")
    s.add_argument("--seq", type=_positive_int("--seq"), default=None,
               help="tokens per sample (default: the workload's)")
    s.add_argument("--attention", choices=("fused", "unfused"), default=None,
                   help="attention kernel of transformer workloads: fused (FlashAttention, "
                        "the default) or unfused (scores materialized in HBM, Megatron-LM "
                        "2021-2022)")
    s.add_argument("--dtype", choices=("bf16", "fp16", "fp8"), default="bf16",
                   help="datatype of the designs' tensor cores: bf16 (default), fp16, or fp8 "
                        "(layers' GEMMs in fp8, attention/head/router in 16 bits, GEMM "
                        "inputs kept in fp8)")
    s.add_argument("--multi-objective", action="store_true",
                   help="Pareto search over throughput, area and TDP")
    s.add_argument("--no-report", action="store_true", help="do not write report.html")

    # report / export
    r = sub.add_parser("report", help="write RUN_DIR/report.html", parents=[common])
    r.add_argument("run_dir",
               help="a run directory written by dse search")
    r.add_argument("--images", action="store_true", help="also write PNG/SVG (needs kaleido "
                   "and Chromium)")
    x = sub.add_parser("export", help="export a design to simulator configs", parents=[common])
    x.add_argument("source", help="run directory or design JSON")
    x.add_argument("--format", required=True, choices=EXPORT_FORMATS,
               help="the simulator to export for")
    x.add_argument("--top", type=_positive_int("--top"), default=None,
                   help="only the N GEMMs that take the largest share of a training step "
                        "(scalesim, zigzag, timeloop)")
    x.add_argument("--layers", default=None,
                   help="only these GEMMs, comma-separated names as in expected_cycles.csv "
                        "(scalesim, zigzag, timeloop)")
    x.add_argument("--out", required=True,
               help="directory to write the export into")

    # worker / dashboard
    k = sub.add_parser("worker", help="join a distributed search", parents=[common])
    k.add_argument("--storage", required=True,
               help="the shared study storage: postgresql://..., sqlite:///PATH.db, journal:PATH or a run directory")
    k.add_argument("--wait", type=_non_negative_float("--wait"), default=0.0,
                   help="seconds to wait for the storage and the study to appear (workers "
                        "started before dse search; default: 0, fail at once)")
    k.add_argument("--study", required=True, type=_study_name,
               help="the study name (dse search prints it)")
    d = sub.add_parser("dashboard", help="start optuna-dashboard on a run's storage",
                       parents=[common])
    d.add_argument("--storage", default=None, help="storage URL or run directory")
    d.add_argument("--host", default="127.0.0.1",
               help="address to serve on (default: 127.0.0.1)")
    d.add_argument("--port", type=_positive_int("--port"), default=8080,
               help="port to serve on (default: 8080)")
    return p


def _add_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=_positive_int("--devices"), default=None,
               help="accelerators (default: tp·pp·dp)")
    p.add_argument("--tp", type=_positive_int("--tp"), default=None,
               help="tensor-parallel degree (default: 1)")
    p.add_argument("--pp", type=_positive_int("--pp"), default=None,
               help="pipeline stages (default: 1)")
    p.add_argument("--dp", type=_positive_int("--dp"), default=None,
               help="data-parallel degree (default: devices/(tp·pp), else 1)")
    p.add_argument("--global-batch", type=_positive_int("--global-batch"), default=None,
               help="samples per step (default: the workload's, rounded up to a multiple of dp·micro-batch)")
    p.add_argument("--micro-batch", type=_positive_int("--micro-batch"), default=None,
               help="samples per micro-batch (default: 1)")
    p.add_argument("--seq", type=_positive_int("--seq"), default=None,
               help="tokens per sample (default: the workload's)")
    p.add_argument("--schedule", choices=SCHEDULES, default="1f1b",
               help="pipeline schedule (default: 1f1b)")
    p.add_argument("--recompute", choices=RECOMPUTE, default=None,
               help="activation recomputation (default: none; selective with "
                    "--recompute-modules)")
    p.add_argument("--recompute-modules", type=_recompute_modules, default=None,
                   metavar="M[,M...]",
                   help="Megatron-Core's selective recompute modules, comma-separated: "
                        f"{', '.join(RECOMPUTE_MODULES)} (default: the attention core)")
    p.add_argument("--sequence-parallel", action="store_true",
               help="Megatron sequence parallelism (with tp > 1)")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=0, help="ZeRO stage")
    p.add_argument("--interleave", type=_positive_int("--interleave"), default=None,
                   help="virtual stages per device (interleaved schedule)")
    from cost_models.stacks import DEFAULT_STACK, stack_names

    p.add_argument("--stack", choices=stack_names(), default=None,
                   help=f"software-stack profile: its attention kernel and which "
                        f"communication overlaps (default: {DEFAULT_STACK}; "
                        "cost_models/data/stacks)")
    p.add_argument("--cp", type=_positive_int("--cp"), default=None,
                   help="context-parallel degree: each sequence split over N devices, ring "
                        "attention (default: 1)")
    p.add_argument("--pipeline-layout", default=None, metavar="LAYOUT",
                   help="layers of each pipeline stage as Megatron-Core's "
                        "--pipeline-model-parallel-layout writes them, e.g. 'Et|(tt|)*30mL' "
                        "(E embedding, t layer, m MTP layer, L loss, | next stage; "
                        "default: balanced by cost)")
    p.add_argument("--dispatcher", choices=DISPATCHERS, default=None,
                   help="MoE token dispatch: alltoall (NCCL, one copy per routed expert) or "
                        "deepep (one copy per destination node, forwarded over NVLink) "
                        "(default: alltoall)")
    p.add_argument("--ep", type=_positive_int("--ep"), default=None,
                   help="expert-parallel degree of a mixture-of-experts model: experts "
                        "sharded over N of the data-parallel ranks, tokens dispatched by "
                        "all-to-all (default: 1)")
    p.add_argument("--etp", type=int, choices=(0, 1), default=None,
                   help="expert tensor parallelism: 0 splits each expert over the tp ranks "
                        "like the MLP (default), 1 keeps experts whole and adds the tp "
                        "ranks to the expert-parallel group")
    p.add_argument("--attention", choices=("fused", "unfused"), default=None,
                   help="attention kernel of a transformer: fused (FlashAttention, the "
                        "default) or unfused (scores materialized in HBM, Megatron-LM "
                        "2021-2022)")


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace
               ) -> argparse.ArgumentParser:
    """The parser of the command (and action) ``args`` selected."""
    for dest in ("command", "action"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, dest, None)
        if not subs or name is None or name not in subs[0].choices:
            break
        parser = subs[0].choices[name]
    return parser


def _command_module(args: argparse.Namespace) -> Any:
    name = args.command
    return importlib.import_module(f"dse.commands.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dse`` script; returns the exit code."""
    parser = build_parser()
    as_json = False
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the (sub)command that refused them: "dse evaluate: ..."
            _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
        as_json = bool(getattr(args, "json", False))
        if args.version:
            from dse import __version__

            result: dict[str, Any] = {"version": __version__}
            print(json.dumps(result) if as_json else f"dse {__version__}")
            return 0
        if args.command is None:
            raise UsageError("dse: missing command; choose one of workloads, hardware, "
                             "evaluate, search, report, export, worker, dashboard")
        if args.command in ("workloads", "hardware") and args.action is None:
            raise UsageError(f"dse {args.command}: missing action; choose one of list, show")
        mod = _command_module(args)
        result = mod.run(args)
        if as_json:
            sys.stdout.write(json.dumps(jsonable(result), allow_nan=False) + "\n")
        else:
            text = mod.render(result, args)
            if text:
                sys.stdout.write(text.rstrip("\n") + "\n")
        return int(result.get("_exit_code", 0)) if isinstance(result, dict) else 0
    except DSEError as e:
        _one_line_error(e, argv, as_json or _wants_json(argv), e.exit_code)
        return e.exit_code
    except KeyboardInterrupt as e:
        why = " ".join(str(e).split())
        text = _scrub("dse: interrupted" + (f"; {why}" if why else ""), argv)
        sys.stderr.write(text + "\n")
        if as_json or _wants_json(argv):
            _json_error(text, 130)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:  # a path the user gave that the system refuses, or a full disk
        if os.environ.get("DSE_DEBUG"):
            traceback.print_exc()
        code = 2 if e.errno in _BAD_PATH_ERRNOS else 1
        where = f"{e.filename}: " if e.filename else ""
        _one_line_error(DSEError(f"{where}{e.strerror or e}"), argv,
                        as_json or _wants_json(argv), code)
        return code
    except Exception as e:  # noqa: BLE001 - last-resort guard: never a traceback
        if os.environ.get("DSE_DEBUG"):
            traceback.print_exc()
        fault = _storage_fault(e)
        if fault is not None:  # disk full, read-only, server gone: say so, exit 1
            _one_line_error(fault, argv, as_json or _wants_json(argv), fault.exit_code)
            return fault.exit_code
        msg = str(e).splitlines()[0] if str(e) else ""
        text = _scrub(f"dse: internal error: {e.__class__.__name__}: {msg} "
                      "(set DSE_DEBUG=1 for a traceback)", argv)
        sys.stderr.write(text + "\n")
        if as_json or _wants_json(argv):
            _json_error(text, 1)
        return 1


_BAD_PATH_ERRNOS = frozenset((errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP,
                              errno.EINVAL, errno.ENOENT, errno.EEXIST)) | NOT_WRITABLE_ERRNOS
"""OS errors that a path given on the command line causes (exit 2: one that does not exist,
is not writable or sits on a read-only file system); others (a full disk, an I/O error)
are the environment's (exit 1)."""


def _storage_fault(e: BaseException) -> DSEError | None:
    """A storage failure (Optuna, SQLAlchemy, a driver) as a one-line error, if it is one."""
    mods = {type(e).__module__.split(".")[0]}
    if not mods & {"optuna", "sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql"}:
        return None
    from search.storage_url import storage_fault

    return storage_fault(e, "(the study)")


def _scrub(text: str, argv: Sequence[str] | None) -> str:
    """No secret of any command-line argument (a ``--storage`` URL's password, a DSN's
    ``password=``) in a line we print, whichever path produced it."""
    from dse.secrets import scrub_secrets

    return scrub_secrets(text, list(sys.argv[1:] if argv is None else argv))


def _wants_json(argv: Sequence[str] | None) -> bool:
    """``--json`` among the arguments (also when parsing them failed)."""
    return "--json" in (sys.argv[1:] if argv is None else list(argv))


def _json_error(text: str, code: int) -> None:
    """The ``--json`` form of an error: one object on stdout (brief §4b)."""
    msg = text.removeprefix("dse: error: ")
    try:
        sys.stdout.write(json.dumps({"error": {"message": msg, "exit_code": int(code)}}) + "\n")
    except BrokenPipeError:  # the reader went away (`dse ... | head -c 0`); stderr has it
        pass


def _one_line_error(e: BaseException, argv: Sequence[str] | None = None,
                    as_json: bool = False, code: int = 2) -> None:
    text = " ".join(str(e).split()) or e.__class__.__name__
    if not text.startswith("dse"):
        text = f"dse: error: {text}"
    text = _scrub(text, argv)
    sys.stderr.write(text + "\n")
    if as_json:
        _json_error(text, code)


def entry() -> None:
    """The ``dse`` console command: :func:`main`, then exit without the interpreter's
    final garbage collection over every object the run made (``gc.freeze``: ~0.15 s of a
    README search's CPU). Everything the run wrote is committed and flushed by then; only
    the process's own heap is left to the operating system."""
    import gc

    rc = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader closed the pipe: no traceback at exit either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = rc or 1
    gc.freeze()
    sys.exit(rc)


if __name__ == "__main__":  # pragma: no cover
    entry()
