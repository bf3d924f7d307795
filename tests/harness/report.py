"""Turn benchmark results into the target check, a markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
# The project README holds only the headline table (``headline``); the full tables are rendered
# into the documentation site from results.json by docs/hooks.py.
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
VARIANTS = ("lambda", "uvicorn", "tf_baseline")
# One colour per thing measured, the same in every panel (TensorFlow/Keras in greys).
COLOURS = {
    "lambda": "tab:blue",
    "uvicorn": "tab:green",
    "onnx_int8": "tab:blue",
    "onnx_fp32": "tab:cyan",
    "tf_baseline": "dimgray",
    "keras_call": "dimgray",
}
FORMATS = ("onnx_int8", "onnx_fp32", "keras_call", "keras_predict")
# Issue 11: Lambda cold start <= 1.1x its unavoidable parts; 12 MP upload <= 2x a 500x375 one.
FLOOR_RATIO_TARGET = 1.1
SIZE_RATIO_TARGET = 2.0


def _cpu_line(meta: dict) -> str:
    cpu = meta.get("cpu")
    if not cpu:
        return ""
    flags = " ".join(cpu.get("int8_flags", [])) or "no int8 ISA flags"
    return f" CPU: {cpu['model']} ({cpu['machine']}; int8-relevant flags: {flags})."


def floor_seconds(cold: dict) -> float | None:
    """The unavoidable part of a Lambda cold start: spawn -> numpy + onnxruntime + session +
    first run (``floor_ort``), plus ``import fastapi`` timed on its own (``floor_fastapi``)."""
    ort, fastapi = cold.get("floor_ort"), cold.get("floor_fastapi")
    if not ort or not fastapi:
        return None
    return ort["p50_s"] + fastapi["phases_p50_s"]["import_fastapi"]


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return slow / fast if slow and fast else None


def targets(
    results: dict, cold_target_s: dict[str, float], cold_default_s: float, speedup: float
) -> list[dict]:
    """One row per target: what was measured, the limit, and whether it is met."""
    rows = []
    for name, model in results["models"].items():
        cold = model["cold_start"]
        limit = cold_target_s.get(name, cold_default_s)
        baseline = cold.get("tf_baseline", {}).get("p50_s")
        for variant in ("lambda", "uvicorn"):
            p50 = cold[variant]["p50_s"]
            rows.append(
                {
                    "target": f"{name}: {variant} spawn -> first prediction p50 <= {limit} s",
                    "measured": f"{p50:.3f} s",
                    "met": p50 <= limit,
                }
            )
            ratio = _ratio(baseline, p50)
            rows.append(
                {
                    "target": f"{name}: {variant} >= {speedup:.0f}x faster cold start than TF",
                    "measured": f"{ratio:.1f}x" if ratio else "no baseline",
                    "met": bool(ratio and ratio >= speedup),
                }
            )
    for name, model in results["models"].items():
        floor = floor_seconds(model["cold_start"])
        if floor:
            lam = model["cold_start"]["lambda"]["p50_s"]
            ratio = lam / floor
            rows.append(
                {
                    "target": f"{name}: lambda cold start <= {FLOOR_RATIO_TARGET}x "
                    "(ORT floor + import fastapi)",
                    "measured": f"{ratio:.2f}x ({lam:.3f} s vs {floor:.3f} s)",
                    "met": ratio <= FLOOR_RATIO_TARGET,
                }
            )
        sizes = model.get("http_sizes")
        if sizes:
            rows.append(
                {
                    "target": f"{name}: HTTP p50 of a 4032x3024 JPEG <= {SIZE_RATIO_TARGET:.0f}x "
                    "a 500x375 one",
                    "measured": f"{sizes['ratio_12mp_vs_small']:.2f}x "
                    f"(phone-weight 12 MP: {sizes['ratio_phone_weight_vs_small']:.2f}x)",
                    "met": sizes["ratio_12mp_vs_small"] <= SIZE_RATIO_TARGET,
                }
            )
    package = results["meta"]["package"]
    limit_mb = results["meta"]["package_target_bytes"] / 1e6
    rows.append(
        {
            "target": f"Lambda package <= {limit_mb:.0f} MB unzipped with the int8 models",
            "measured": f"{package['unzipped_bytes'] / 1e6:.1f} MB ({', '.join(package['models'])})",
            "met": package["unzipped_bytes"] <= results["meta"]["package_target_bytes"],
        }
    )
    return rows


def markdown(results: dict, chart_path: Path | str) -> str:
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_average_before_after'][0]} "
        f"before, {meta['load_average_before_after'][1]} after (the cores are shared: treat small "
        "differences as noise). Command: `" + meta["command"] + "`." + _cpu_line(meta),
        "",
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [
        f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in results["targets"]
    ]
    lines += [
        "",
        f"### Cold start: spawn -> first correct prediction ({meta['runs']} fresh processes each)",
        "",
        "| model | variant | p50 s | p90 s | vs TF (p50) | CPU s (p50) | peak RSS MB | installed MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        baseline = model["cold_start"].get("tf_baseline", {}).get("p50_s")
        for variant in VARIANTS:
            c = model["cold_start"].get(variant)
            if c is None:
                continue
            ratio = _ratio(baseline, c["p50_s"])
            lines.append(
                f"| {name} | {variant} | {c['p50_s']:.3f} | {c['p90_s']:.3f} | "
                f"{f'{ratio:.1f}x' if ratio else '-'} | {c['cpu_p50_s']:.2f} | {c['peak_rss_mb']:.0f} | "
                f"{c['installed_mb']:.0f} |"
            )
    lines += [
        "",
        "Where the Lambda cold start goes (p50 s): Python's own start-up, then the imports "
        "(FastAPI, pydantic, ONNX Runtime, numpy, Pillow), init (settings, the app, the model "
        "sessions) and the first invocation (multipart parsing, decoding, the first ORT run).",
        "",
        "| model | interpreter start | imports | init | first invocation | total |",
        "|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        c = model["cold_start"]["lambda"]
        phases = c["phases_p50_s"]
        start = c["p50_s"] - sum(phases.values())
        lines.append(
            f"| {name} | {start:.3f} | {phases['imports']:.3f} | {phases['init']:.3f} | "
            f"{phases['first_invoke']:.3f} | {c['p50_s']:.3f} |"
        )
    lines += [
        "",
        "The floor beside the package (p50 s, bare `python -I -S` over the same package files): "
        "`numpy + onnxruntime` imports, session creation and one run of the model, spawn to done; "
        "`import fastapi` on its own (after the interpreter is up).",
        "",
        "| model | floor: imports | session | first run | spawn -> run done | import fastapi | "
        "floor + fastapi | lambda | lambda / that |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        cold = model["cold_start"]
        floor = floor_seconds(cold)
        if floor is None:
            continue
        ort = cold["floor_ort"]
        phases = ort["phases_p50_s"]
        lam = cold["lambda"]["p50_s"]
        lines.append(
            f"| {name} | {phases['imports']:.3f} | {phases['session']:.3f} | {phases['first_run']:.3f} | "
            f"{ort['p50_s']:.3f} | {cold['floor_fastapi']['phases_p50_s']['import_fastapi']:.3f} | "
            f"{floor:.3f} | {lam:.3f} | {lam / floor:.2f}x |"
        )
    lines += [
        "",
        f"### Warm in-process inference (real images; batch {meta['batch']} for the batched column)",
        "",
        "| model | format | calls | per-image p50 ms | p99 ms | images/s batch 1 | images/s batch "
        f"{meta['batch']} | int8 speedup (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        int8 = model["warm"]["onnx_int8"]["per_image_p50_ms"]
        for fmt in FORMATS:
            w = model["warm"].get(fmt)
            if w is None:
                continue
            ratio = _ratio(w["per_image_p50_ms"], int8)
            lines.append(
                f"| {name} | {fmt} | {w['calls']} | {w['per_image_p50_ms']:.2f} | "
                f"{w['per_image_p99_ms']:.2f} | "
                f"{w['throughput_batch1']:.0f} | {w['throughput_batch']:.0f} | {ratio:.1f}x |"
            )
    lines += [
        "",
        f"### HTTP end to end: one real JPEG upload, up to {meta['requests']} sequential requests",
        "",
        "| model | server | requests | p50 ms | p99 ms | vs TF (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        baseline = model["http"].get("tf_baseline", {}).get("p50_ms")
        for server, h in model["http"].items():
            ratio = _ratio(baseline, h["p50_ms"])
            lines.append(
                f"| {name} | {server} | {h['requests']} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} | "
                f"{f'{ratio:.1f}x' if ratio else '-'} |"
            )
    batched = {name: m["http_batch"] for name, m in results["models"].items() if m.get("http_batch")}
    if batched:
        lines += [
            "",
            "### HTTP batch request: the same upload N times in one `POST /models/{name}/predict/batch`",
            "",
            "| model | images | requests | p50 ms | p99 ms | p50 ms per image | single-image p50 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, b in batched.items():
            single = results["models"][name]["http"].get("uvicorn", {}).get("p50_ms")
            lines.append(
                f"| {name} | {b['images']} | {b['requests']} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | "
                f"{b['p50_ms_per_image']:.2f} | {f'{single:.2f}' if single else '-'} |"
            )
    sized = {name: m["http_sizes"] for name, m in results["models"].items() if m.get("http_sizes")}
    if sized:
        labels = list(next(iter(sized.values()))["sizes"])
        lines += [
            "",
            "### HTTP by upload size: the same photo, sizes sent in turn to the same server (p50 ms)",
            "",
            "| model | " + " | ".join(labels) + " | 12 MP / 500x375 |",
            "|---|" + "---|" * len(labels) + "---|",
        ]
        for name, sizes in sized.items():
            cells = " | ".join(
                f"{sizes['sizes'][label]['p50_ms']:.1f} ({sizes['sizes'][label]['bytes'] / 1e6:.2f} MB)"
                for label in labels
            )
            lines.append(f"| {name} | {cells} | {sizes['ratio_12mp_vs_small']:.2f}x |")
    notes = [
        f"- {name}: baseline Keras model = {m['keras_model']}; upload `{m['upload']}`"
        for name, m in results["models"].items()
    ]
    lines += ["", *notes, "", f"![benchmark chart]({chart_path})", ""]
    return "\n".join(lines)


def headline(results: dict) -> str:
    """The project README's one results table: per model, Lambda cold start, warm int8 latency
    and HTTP p50, each against its baseline, with the run's date, command and CPU."""
    meta = results["meta"]
    lines = [
        "| model | Lambda cold start p50 | vs TensorFlow | warm int8 per image p50 | vs ONNX fp32 | "
        "HTTP p50, one JPEG | vs TensorFlow |",
        "|---|---|---|---|---|---|---|",
    ]

    def times(slow: float | None, fast: float | None) -> str:
        ratio = _ratio(slow, fast)
        return f"{ratio:.1f}x" if ratio else "-"

    for name, model in results["models"].items():
        cold, warm, http = model["cold_start"], model["warm"], model["http"]
        lam = cold["lambda"]["p50_s"]
        int8 = warm["onnx_int8"]["per_image_p50_ms"]
        ours = http["uvicorn"]["p50_ms"]
        lines.append(
            f"| {name} | {lam:.2f} s | {times(cold.get('tf_baseline', {}).get('p50_s'), lam)} | "
            f"{int8:.2f} ms | {times(warm.get('onnx_fp32', {}).get('per_image_p50_ms'), int8)} | "
            f"{ours:.1f} ms | {times(http.get('tf_baseline', {}).get('p50_ms'), ours)} |"
        )
    lines += [
        "",
        f"`{meta['command']}` ({meta['date'][:10]}, {meta['runs']} cold starts per variant, "
        f"{meta['requests']} HTTP requests) on {meta['machine']}.{_cpu_line(meta)} TensorFlow is the same "
        "Keras model served by FastAPI + TensorFlow.",
    ]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> Path:
    """Three panels: cold start p50, warm per-image p50, HTTP p50; log scale, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results["models"])
    panels = [
        ("Cold start p50 (s)", VARIANTS, lambda m, k: m["cold_start"].get(k, {}).get("p50_s")),
        ("Warm per-image p50 (ms)", FORMATS[:3], lambda m, k: m["warm"].get(k, {}).get("per_image_p50_ms")),
        ("HTTP p50 (ms)", ("uvicorn", "tf_baseline"), lambda m, k: m["http"].get(k, {}).get("p50_ms")),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    x = np.arange(len(names))
    for ax, (title, keys, get) in zip(axes, panels, strict=True):
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            values = [get(results["models"][n], key) or 0.0 for n in names]
            offset = (i - (len(keys) - 1) / 2) * width
            bars = ax.bar(x + offset, values, width, label=key, color=COLOURS.get(key))
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
        ax.set_title(title)
        # Model names are long ("mobilenet_0.75", "cats_vs_dogs"): slanted, they do not overlap.
        ax.set_xticks(x, names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle("edge-infer (ONNX Runtime int8) vs TensorFlow/Keras baseline; lower is better")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_readme(readme: Path, table: str, start: str = START, end: str = END) -> None:
    """Replace the text between the ``start`` and ``end`` markers in ``readme`` with ``table``.

    Raises ValueError if ``readme`` lacks either marker (rather than appending a copy).
    """
    text = readme.read_text()
    head, found, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise ValueError(f"{readme} has no {start} ... {end} block")
    readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")
