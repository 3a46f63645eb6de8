"""``mer-keras env``: what this machine and process would make a run depend on."""

from __future__ import annotations

from typing import Annotated

import typer

from mer_keras.cli.common import console

JSON = typer.Option("--json", help="Print the record as JSON (as config.json holds it).")
NO_TF = typer.Option("--no-tensorflow", help="Leave out TensorFlow's state (no TensorFlow import: 0.1 s instead of "
                                             "about 3 s).")


def env(as_json: Annotated[bool, JSON] = False, no_tensorflow: Annotated[bool, NO_TF] = False) -> None:
    """Print the environment a run records in its config.json: CPU model and instruction set, cores,
    package versions, TensorFlow's build, oneDNN state, threads and GPUs, the variables that change
    kernels. Trained figures depend on the CPU kind (docs/RELIABILITY.md, "Across machines")."""
    import json

    from rich.table import Table

    from mer_keras.environment import environment_record, isa_level

    record = environment_record(with_tensorflow=not no_tensorflow)
    if as_json:
        print(json.dumps(record, indent=2))
        return
    cpu = record["cpu"]
    table = Table("", "", show_header=False, box=None, pad_edge=False)
    table.add_row("machine kind", record["machine_kind"])
    table.add_row("CPU", f"{cpu['model']} ({cpu['vendor']}, {cpu['machine']}), {cpu['cores']} usable core(s) of "
                         f"{cpu['logical_cpus']}")
    table.add_row("instruction set", f"{isa_level(cpu['isa'])}: {' '.join(cpu['isa']) or '-'}")
    plat = record["platform"]
    table.add_row("platform", f"{plat['system']} {plat['release']}, Python {plat['python']}, {plat['libc'] or '-'}")
    table.add_row("mer-keras code", record["code"] or "installed package (no git checkout)")
    for name, version in record["packages"].items():
        table.add_row(name, version or "not installed")
    for blas in record["blas"]:
        table.add_row("BLAS", f"{blas['library']} ({blas['kernels']} kernels, {blas['threads']} thread(s))")
    tf = record.get("tensorflow")
    if tf:
        table.add_row("TensorFlow build", f"{tf['version']}, " + (f"CUDA {tf['cuda']}, cuDNN {tf['cudnn']}"
                                                                  if tf["built_with_cuda"] else "CPU only"))
        table.add_row("oneDNN", f"{tf['onednn']}; ISA cap: {tf['onednn_max_cpu_isa']}")
        threads = [f"{tf[k] or 'default (one per core)'} {k.split('_')[0]}-op" for k in ("intra_op_threads",
                                                                                        "inter_op_threads")]
        table.add_row("TensorFlow threads", ", ".join(threads))
        table.add_row("GPUs", ", ".join(tf["gpus"]) or "none")
        table.add_row("op determinism", "on" if tf["op_determinism"] else "off (each training job turns it on)")
    for name, value in record["variables"].items():
        table.add_row(name, value)
    console.print(table)
