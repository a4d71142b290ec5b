"""The emu kernel profile: ``python benchmarks/kernels.py --device emu --profile``.

Runs each memory-bound entry of benchmarks/kernels.py (families below) once through
the host emulation with the kernel profiler on (minidl.backend.kernel.emu_profile), at
a mid-sized shape (kernels.profile_shape: the benchmark's layout, one image, a
smaller plane), and reports per kernel launch:

- sector efficiency: bytes requested over the bytes of the 32-byte sectors fetched;
- traffic over ideal: sector bytes over the bytes the launch touches at all;
- shared-memory bank conflicts (wavefronts over the conflict-free minimum, and the
  worst instruction), and the fraction of divergent warp basic blocks;
- registers and static shared memory per thread block from ``nvcc --resource-usage``
  for sm_90 (where nvcc is installed) and the theoretical occupancy they allow;
- a memory-roofline time estimate on an H200 (4.8 TB/s HBM3e peak): the sector
  traffic scaled from the profiled shape to the benchmark's shape, over the bandwidth.

The thresholds of a memory-bound kernel are >= 90% sector efficiency and <= 1.1x the
ideal bytes; the table marks each launch against them.  A second table profiles the
tensor-core convolutions (TF32 / FP16 / BF16 entries of the conv family), which are
compute-bound: for them the bank conflicts of the staged tiles are the figure to read,
and the memory thresholds do not apply.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

from minidl.backend.kernel.emu_profile import H200_BANDWIDTH, profile_emu

MEMORY_BOUND_FAMILIES = ("elementwise", "optim", "softmax", "batchnorm", "pool", "lrn", "depthwise")
MIN_SECTOR_EFFICIENCY = 0.90
MAX_TRAFFIC_RATIO = 1.10


# written above the tensor-core table
TC_NOTE = ("Read the bank conflicts here: implicit GEMM re-reads inputs per tap and per block "
           "(caches absorb it), and its sector figures move by up to 20% between runs with where "
           "the arrays land (addresses are rebased on the nearest pointer argument).")


def is_memory_bound(e):
    return e["family"] in MEMORY_BOUND_FAMILIES


def is_tensor_core(e):
    """An entry run by kernels/conv_tc.cuh (registered with a tc_format)."""
    return e.get("tc_format") is not None

# sm_90 (H100/H200) per-SM limits for the occupancy calculation
SM90 = dict(threads=2048, blocks=32, registers=65536, register_unit=256, smem=228 * 1024,
            smem_per_block_reserved=1024)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def occupancy(registers, smem_bytes, block_threads, sm=SM90):
    """Theoretical occupancy (resident warps over the SM's maximum) of a kernel using
    ``registers`` per thread and ``smem_bytes`` of shared memory per block."""
    warps = -(-block_threads // 32)
    per_warp_regs = -(-registers * 32 // sm["register_unit"]) * sm["register_unit"]
    limits = [sm["blocks"], sm["threads"] // (warps * 32)]
    if per_warp_regs:
        limits.append(sm["registers"] // (per_warp_regs * warps))
    limits.append(sm["smem"] // (smem_bytes + sm["smem_per_block_reserved"]))
    return min(limits) * warps * 32 / sm["threads"]


def parse_resource_usage(ptxas_output, demangle):
    """{kernel name: (registers, static shared bytes)} from ``nvcc --resource-usage``
    output, for the float instantiations (the most of any instantiation)."""
    usage, current = {}, None
    for line in ptxas_output.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            sig = demangle(m.group(1))
            k = re.search(r"(\w+)(?:<([^>]*)>)?\(", sig)
            current = k.group(1) if k and (k.group(2) is None or "float" in k.group(2)) else None
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            smem = re.search(r"(\d+) bytes smem", line)
            regs, sh = int(m.group(1)), int(smem.group(1)) if smem else 0
            old = usage.get(current, (0, 0))
            usage[current] = (max(old[0], regs), max(old[1], sh))
    return usage


def nvcc_resource_usage(families, arch="sm_90"):
    """Per-kernel registers and static shared memory of kernels/<family>.cu, or {}
    with a reason when nvcc is not installed."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return {}, "nvcc not found: no register/occupancy figures"
    demangled = {}

    def demangle(name):
        if name not in demangled:
            demangled[name] = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip() \
                if shutil.which("c++filt") else name
        return demangled[name]

    usage = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families:
            out = subprocess.run([nvcc, "--resource-usage", f"-arch={arch}", "-std=c++17",
                                  "-I", os.path.join(ROOT, "kernels"), "-c",
                                  os.path.join(ROOT, "kernels", f"{fam}.cu"), "-o", os.path.join(tmp, f"{fam}.o")],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                return {}, f"nvcc failed on {fam}.cu: {out.stderr.strip().splitlines()[-1:]}"
            usage.update(parse_resource_usage(out.stdout + out.stderr, demangle))
    return usage, f"nvcc --resource-usage -arch={arch}"


def profile_entries(entries, ctx, only=None, select=is_memory_bound):
    """One row per kernel launch of each selected entry, run at ctx's size."""
    rows = []
    for e in entries:
        label = f"{e['family']}: {e['name']} {e['shape']}"
        if not select(e) or (only and only not in label):
            continue
        ctx.scale = 1.0
        case = e["make"](ctx)
        with profile_emu() as launches:
            case.run()
        for p in launches:
            rows.append(dict(
                family=e["family"], entry=e["name"], shape=e["shape"], kernel=p.name,
                grid=list(p.grid), block=list(p.block), threads=p.threads,
                sector_efficiency=p.sector_efficiency, traffic_ratio=p.traffic_ratio,
                moved_bytes=p.moved_bytes, ideal_bytes=p.ideal_bytes,
                bank_conflict=p.bank_conflict, max_bank_conflict=p.shared_max_conflict,
                divergent_fraction=p.divergent_fraction,
                h200_us=p.roofline_seconds(H200_BANDWIDTH) * ctx.scale * 1e6,
                dynamic_smem=p.dynamic_smem))
    return rows


def meets_thresholds(row):
    return row["sector_efficiency"] >= MIN_SECTOR_EFFICIENCY and row["traffic_ratio"] <= MAX_TRAFFIC_RATIO


def add_resources(rows, usage):
    for r in rows:
        base = re.match(r"\(?\s*(\w+)", r["kernel"]).group(1)  # "(k<T, true>)" -> "k"
        if base in usage:
            regs, smem = usage[base]
            r["registers"], r["static_smem"] = regs, smem
            threads = r["block"][0] * r["block"][1] * r["block"][2]
            r["occupancy"] = occupancy(regs, smem + r["dynamic_smem"], threads)


def _fmt_row(r, compute_bound=False):
    res = (f"{r['registers']} | {r['static_smem'] + r['dynamic_smem']} | {100 * r['occupancy']:.0f}%"
           if "registers" in r else " | | ")
    mark = "-" if compute_bound else "yes" if meets_thresholds(r) else "**no**"
    conflict = f"{r['bank_conflict']:.2f} (max {r['max_bank_conflict']})" if r["max_bank_conflict"] else "-"
    return (f"| {r['entry']} {r['shape']} | `{r['kernel']}` | {'x'.join(map(str, r['grid']))} / "
            f"{'x'.join(map(str, r['block']))} | {100 * r['sector_efficiency']:.1f}% | {r['traffic_ratio']:.2f} | "
            f"{mark} | {conflict} | {100 * r['divergent_fraction']:.1f}% | {res} | "
            f"{'-' if compute_bound else format(r['h200_us'], '.1f')} |")


HEADER = ("| entry (benchmark shape) | kernel | grid / block (profiled) | sector eff. | traffic / ideal | "
          "meets 90% / 1.1x | bank conflict | divergent | regs | smem B | occupancy | H200 est. us |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def write_profile(rows, tc_rows, meta, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "emu_profile.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows, tensor_core_rows=tc_rows), f, indent=1)
    failing = [r for r in rows if not meets_thresholds(r)]
    with open(os.path.join(out_dir, "emu_profile.md"), "w") as f:
        f.write("# minidl memory-bound kernels: emu profile\n\n")
        f.write(__doc__.split("\n\n", 1)[1].split("The thresholds")[0])
        f.write("".join(f"- {k}: {v}\n" for k, v in meta.items()))
        f.write("\n" + HEADER + "\n" + "\n".join(_fmt_row(r) for r in rows) + "\n")
        f.write(f"\n{len(rows) - len(failing)} of {len(rows)} launches meet >= {MIN_SECTOR_EFFICIENCY:.0%} "
                f"sector efficiency and <= {MAX_TRAFFIC_RATIO}x the ideal bytes.\n")
        if failing:
            f.write("Below them: " + ", ".join(sorted({f"`{r['kernel']}`" for r in failing})) + ".\n")
        if tc_rows:
            f.write("\n## Tensor-core convolutions (compute-bound; kernels/conv_tc.cuh)\n\n" + TC_NOTE + "\n\n" + HEADER + "\n"
                    + "\n".join(_fmt_row(r, compute_bound=True) for r in tc_rows) + "\n")
            free = [r for r in tc_rows if r["bank_conflict"] <= 1.0]
            f.write(f"\n{len(free)} of {len(tc_rows)} tensor-core launches at the conflict-free minimum of "
                    f"shared-memory wavefronts.\n")


def run(entries, ctx, out_dir, only=None):
    """The profile of every memory-bound entry and every tensor-core convolution; prints
    and writes emu_profile.{md,json}."""
    rows = profile_entries(entries, ctx, only)
    tc_rows = profile_entries(entries, ctx, only, select=is_tensor_core)
    usage, how = nvcc_resource_usage(sorted({r["family"] for r in rows + tc_rows}))
    add_resources(rows + tc_rows, usage)
    meta = dict(resources=how, roofline=f"H200 HBM3e {H200_BANDWIDTH / 1e12:.1f} TB/s, sector traffic "
                                         "scaled to the benchmark shape",
                profile_elements="largest tensor <= 65536 elements (kernels.PROFILE_ELEMENTS)")
    print(HEADER)
    for r in rows:
        print(_fmt_row(r), flush=True)
    for r in tc_rows:
        print(_fmt_row(r, compute_bound=True), flush=True)
    write_profile(rows, tc_rows, meta, out_dir)
    return rows + tc_rows
