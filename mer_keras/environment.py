"""What a result depends on besides the code and the data: the CPU, the packages, the threads.

Trained figures differ between CPU kinds. TensorFlow's oneDNN picks other kernels with AVX-512
than with AVX2, so float sums differ in the last bits and 80 epochs make those bits visible.
TFLite's XNNPACK and the converter's calibration do the same for int8 models. The data path does
not differ: the synthetic renderer, the face alignment and the dynamic image give the same bits on
every x86-64 CPU with AVX2 and FMA (:mod:`mer_keras.preprocess.portable`).

This module reads that environment. :func:`environment_record` is written into every run's
``config.json`` (``environment``) and printed by ``mer-keras env``. :func:`machine_kind` is the
short form that fold files carry. :func:`differences` is what ``evaluate``, ``merge``,
``ensemble`` and ``--resume`` warn about when runs from several machines meet.

Everything but :func:`tensorflow_info` works without importing TensorFlow.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata

#: Distributions whose versions change numbers (or what runs), in the order they are reported.
PACKAGES = ("mer-keras", "tensorflow", "tf-keras", "tensorflow-model-optimization", "mediapipe",
            "opencv-contrib-python", "numpy", "scipy", "scikit-learn", "scikit-image", "ai-edge-litert", "protobuf")
#: Instruction-set extensions that change which kernels numpy, OpenBLAS, oneDNN and XNNPACK run, as
#: /proc/cpuinfo names them (numpy's own detection is used where /proc/cpuinfo is not there).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")
#: numpy's names of the same features (``numpy.core._multiarray_umath.__cpu_features__``), which it
#: reads with CPUID: they are what the libraries see, also under an emulator.
_NUMPY_FEATURES = {"SSE42": "sse4_2", "AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "F16C": "f16c",
                   "AVX512F": "avx512f", "AVX512BW": "avx512bw", "AVX512VL": "avx512vl", "AVX512VNNI": "avx512_vnni",
                   "AVX512_SPR": "avx512_fp16"}
#: Environment variables that change which kernels run or how many threads they use.
VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
             "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES",
             "OPENCV_CPU_DISABLE", "OPENCV_FOR_THREADS_NUM", "CUDA_VISIBLE_DEVICES", "TF_DETERMINISTIC_OPS")


def _proc_cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return {}
    out = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _numpy_features() -> set[str] | None:
    try:
        from numpy.core._multiarray_umath import __cpu_features__
    except ImportError:  # pragma: no cover - numpy 2 moved it
        try:
            from numpy._core._multiarray_umath import __cpu_features__
        except ImportError:
            return None
    return {_NUMPY_FEATURES[k] for k, on in __cpu_features__.items() if on and k in _NUMPY_FEATURES}


def cpu_info() -> dict:
    """The CPU as the numerical libraries see it.

    Returns:
        {"model": str, "vendor": str, "isa": [flags of :data:`ISA_FLAGS` present], "cores": int
        (usable by this process), "logical_cpus": int, "machine": "x86_64" ...}. ``isa`` comes
        from CPUID through numpy where it can (what an emulator presents, not the host), else
        from /proc/cpuinfo; ``model`` and ``vendor`` come from /proc/cpuinfo (under a user-mode
        emulator such as qemu-x86_64 they name the host).
    """
    info = _proc_cpuinfo()
    flags = set(info.get("flags", "").split())
    seen = _numpy_features()
    if seen is not None and platform.machine() in ("x86_64", "AMD64"):
        # numpy reads CPUID itself; /proc/cpuinfo adds what numpy does not name (VNNI flavours, AMX),
        # but only beside the base extension numpy sees (an emulator's /proc/cpuinfo is the host's)
        base = {"avx512": "avx512f", "amx": "avx512f", "avx_vnni": "avx2"}
        isa = [f for f in ISA_FLAGS if f in seen or (f not in _NUMPY_FEATURES.values() and f in flags and all(
            b in seen for prefix, b in base.items() if f.startswith(prefix)))]
    else:
        isa = [f for f in ISA_FLAGS if f in flags]
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return {"model": info.get("model name") or platform.processor() or "unknown",
            "vendor": info.get("vendor_id", "unknown"), "isa": isa, "cores": cores,
            "logical_cpus": os.cpu_count() or 1, "machine": platform.machine()}


def isa_level(isa) -> str:
    """The widest vector extension of a flag list: ``AVX-512``, ``AVX2``, ``AVX`` or ``SSE``."""
    isa = set(isa)
    if "avx512f" in isa:
        return "AVX-512"
    if "avx2" in isa:
        return "AVX2"
    return "AVX" if "avx" in isa else "SSE"


def package_versions() -> dict[str, str | None]:
    """{distribution: installed version or None} for :data:`PACKAGES`, read without importing them."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> str | None:
    """``git describe --always --dirty`` of the checkout mer_keras runs from, or None when it is not a
    git checkout (an installed wheel: its version is in :func:`package_versions`)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        res = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return []
    return [{"library": i.get("internal_api"), "kernels": i.get("architecture"), "threads": i.get("num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def tensorflow_info() -> dict:
    """TensorFlow's build and run-time state (imports TensorFlow).

    Returns:
        {"version", "built_with_cuda", "cuda", "cudnn", "onednn": "on" | "off" and why,
        "onednn_max_cpu_isa", "intra_op_threads", "inter_op_threads" (0: TensorFlow's default,
        one per core), "gpus": [names], "op_determinism": bool}.
    """
    from mer_keras._keras import tf

    build = dict(tf.sysconfig.get_build_info())
    flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if flag is not None:
        onednn = "on (TF_ENABLE_ONEDNN_OPTS=1)" if flag.strip() in ("1", "true", "True") else \
            f"off (TF_ENABLE_ONEDNN_OPTS={flag})"
    else:
        onednn = "on (TensorFlow's default on x86-64 Linux)" if platform.machine() == "x86_64" and \
            platform.system() == "Linux" else "off (TensorFlow's default here)"
    from mer_keras._keras import op_determinism_enabled

    determinism = op_determinism_enabled()
    return {"version": tf.__version__, "built_with_cuda": bool(build.get("is_cuda_build")),
            "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"), "onednn": onednn,
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "all the CPU has"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")], "op_determinism": determinism}


def environment_record(with_tensorflow: bool = True) -> dict:
    """Everything of this machine and process that can change a figure, as JSON-ready values.

    Returns:
        {"machine_kind": :func:`machine_kind`, "cpu": :func:`cpu_info`, "platform": {"system",
        "release", "python", "libc"}, "packages": :func:`package_versions`, "code":
        :func:`code_version`, "variables": {set
        variables of :data:`VARIABLES`}, "blas": [...], "tensorflow": :func:`tensorflow_info`
        (only ``with_tensorflow``)}.
    """
    libc = platform.libc_ver()
    record = {"cpu": cpu_info(),
              "platform": {"system": platform.system(), "release": platform.release(),
                           "python": platform.python_version(), "libc": " ".join(v for v in libc if v) or None},
              "packages": package_versions(), "code": code_version(),
              "variables": {k: os.environ[k] for k in VARIABLES if k in os.environ},
              "blas": _blas()}
    if with_tensorflow:
        record["tensorflow"] = tensorflow_info()
    record["machine_kind"] = machine_kind(record)
    return {"machine_kind": record.pop("machine_kind"), **record}


def machine_kind(record: Mapping) -> str:
    """One line naming what makes trained numbers differ: CPU model, vendor, instruction set.

    ``"AMD EPYC (AuthenticAMD; AVX-512: avx512f avx512bw ...)"``. Two runs with the same kind and
    the same :func:`numeric_packages` give the same figures up to the thread count (which moves
    trained figures far less than a CPU kind does; the record keeps the cores).
    """
    cpu = record.get("cpu", {}) if isinstance(record, Mapping) else {}
    isa = cpu.get("isa", [])
    wide = [f for f in isa if f.startswith(("avx512", "amx", "avx_vnni"))] or [f for f in isa if f in ("avx2", "fma")]
    return (f"{cpu.get('model', 'unknown')} ({cpu.get('vendor', 'unknown')}; {isa_level(isa)}"
            f"{': ' + ' '.join(wide) if wide else ''})")


def numeric_packages(record: Mapping) -> dict[str, str | None]:
    """The versions in a record of the packages that compute trained numbers (TensorFlow, numpy,
    OpenCV, mediapipe, ai-edge-litert, tfmot)."""
    packages = record.get("packages", {}) if isinstance(record, Mapping) else {}
    return {k: packages.get(k) for k in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "mediapipe",
                                         "opencv-contrib-python", "numpy", "ai-edge-litert")}


def differences(records: Mapping[str, Mapping | None]) -> list[str]:
    """Why figures of several runs (or a run and this machine) may differ in their last digits.

    Args:
        records: {name (a run folder, "this machine"): its environment record, or None when it has
            none (a run made before records were kept)}.
    Returns:
        One line per difference: the machine kinds when they differ, then each package whose
        version differs; [] when all agree or fewer than two records are known.
    """
    known = {name: r for name, r in records.items() if isinstance(r, Mapping) and r}
    unknown = [name for name, r in records.items() if not (isinstance(r, Mapping) and r)]
    out = []
    if unknown and known:
        out.append(f"no environment recorded for {', '.join(map(str, unknown))} (made before mer-keras recorded "
                   "one): the machines cannot be compared")
    if len(known) < 2:
        return out
    kinds = {name: r.get("machine_kind") or machine_kind(r) for name, r in known.items()}
    if len(set(kinds.values())) > 1:
        out.append("made on different machines: " + "; ".join(f"{n}: {k}" for n, k in kinds.items()) +
                   " (trained figures differ across CPU kinds in their last digits, more after many epochs)")
    versions = {name: numeric_packages(r) for name, r in known.items()}
    for package in next(iter(versions.values())):
        seen = {name: v[package] for name, v in versions.items()}
        if len(set(seen.values())) > 1:
            out.append(f"{package} versions differ: " + ", ".join(f"{n}: {v}" for n, v in seen.items()))
    return out


_CURRENT: dict = {}


def current_machine_kind() -> str:
    """:func:`machine_kind` of this process's machine (computed once; no TensorFlow import)."""
    if "kind" not in _CURRENT:
        _CURRENT["kind"] = machine_kind({"cpu": cpu_info()})
    return _CURRENT["kind"]


def fold_machines_warning(kinds: Mapping[str, str | None]) -> list[str]:
    """One warning when the folds of one result were trained on different machine kinds.

    Args:
        kinds: {fold name: the ``machine_kind`` its fold file records, or None (not recorded)}.
    Returns:
        [] when every recorded kind is the same; else one line with each kind and its fold count.
    """
    by_kind: dict[str, list[str]] = {}
    for fold, kind in kinds.items():
        by_kind.setdefault(kind or "not recorded", []).append(fold)
    recorded = [k for k in by_kind if k != "not recorded"]
    if len(recorded) < 2:
        return []
    return ["folds trained on different machines, pooled into one result: " + "; ".join(
        f"{len(folds)} fold(s) on {kind}" for kind, folds in sorted(by_kind.items())) +
        " (trained figures differ across CPU kinds in their last digits, more after many epochs)"]
