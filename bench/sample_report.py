"""The Markdown table and the one-paragraph description bench/sample.py prints."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def sounds(n: int) -> str:
    return f"{n} sound{'' if n == 1 else 's'}"


def _num(x: float) -> str:
    """Two decimals, three significant digits below 0.1, none from 100 up."""
    return f"{x:.0f}" if x >= 100 else f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def markdown(results: dict[str, Any]) -> str:
    """The table for BENCHMARKS.md."""
    cuda = results["device"] == "cuda"
    head = (
        "| class (guidance) | precision | compile | sampler | steps | network evals | "
        f"s / {sounds(results['n'])} | real-time factor | rel. L2 vs ref | log-mel dB vs ref |"
    )
    rule = "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    if cuda:
        head += " TFLOP/s | peak GPU memory |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for r in results["runs"]:
        cls = f"{r['class']} ({r['guidance']:g})"
        evals = f"{r['evals']} ({r['rows_per_sound']:g}x)"
        row = (
            f"| {cls} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['sampler']} | "
            f"{r['steps']} | {evals} | {_num(r['seconds'])} | {_num(r['real_time_factor'])} | "
            f"{_fmt(r.get('rel_l2'), '.4f')} | {_fmt(r.get('log_mel_db'), '.2f')} |"
        )
        if cuda:
            row += f" {r['tflops']:.0f} | {_fmt(r.get('peak_gpu_gib'), '.1f')} GiB |"
        lines.append(row)
    return "\n".join(lines)


def describe(results: dict[str, Any]) -> str:
    m = results["machine"]
    where = f"{m['cpu']}, {m['cores']} cores"
    if "gpu" in m:
        where = f"{m['gpu']} (CUDA {m['cuda']}), host {where}"
    ref = results["reference"]
    lines = [
        f"Machine: {where}; torch {m['torch']}, {m['threads']} threads "
        f"(OMP_NUM_THREADS={m['omp_num_threads']}), Python {m['python']}, "
        f"load average {m['load_average']:.1f} at the start.",
        f"Model: {results['preset']} preset, {results['params_m']:.2f} M weights, "
        f"{results['weights']}; {sounds(results['n'])} of {results['seconds_audio']:g} s "
        f"({results['length']} samples at {results['sample_rate']} Hz), batch "
        f"{results['batch_size']}, seed {results['seed']}; one network call on one clip: "
        f"{results['gflop_per_row']:.1f} GFLOP.",
        f"Reference: {ref['steps']}-step DDIM, fp32, eager, same noise and class "
        f"({ref['seconds']:.2f} s, "
        f"{'timed as a row' if ref['is_row'] else 'one cold run, start-up included'}).",
        "Network evals: model calls per run (x: network rows per sound; 2 = guidance runs "
        "the conditional and the null class together).",
    ]
    if results["weights"] == "random":
        lines.append(
            "Random weights: the distances measure the solvers on an untrained network's ODE, "
            "not the quality of sounds."
        )
    return "\n".join(lines)
