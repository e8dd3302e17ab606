"""The concise end-of-export summary: what was written, accuracy, recall, latency."""

from __future__ import annotations

from typing import Any

from scann_serving.client.contract import MANIFEST_PATH, WARMUP_PATH
from scann_serving.server._native_search import TOWER_INTEGER, TOWER_STRING


def summary(manifest: dict[str, Any], version_dir: str, seconds: float) -> str:
    """Human-readable summary of one published version (from its manifest)."""
    ev = manifest.get("evaluation", {})
    lines = [
        f"scann-export: wrote {version_dir} (model {manifest['model_name']!r}, "
        f"version {manifest['version']}) in {seconds:.1f}s",
        f"  files: saved_model.pb, variables/, {WARMUP_PATH} "
        f"({manifest.get('warmup_records', 0)} requests), {MANIFEST_PATH}"
        + (", assets.extra/scann_tuning.png" if manifest.get("tuning", {}).get("plot") else ""),
        f"  catalogue: {manifest['num_candidates']:,} candidates x dim {manifest['embedding_dim']}; "
        f"k={manifest['k']} (max_k={manifest['max_k']}); index: "
        f"{_index(manifest['index'], len(manifest.get('search_bands') or []))}",
        "",
        *table(ev),
    ]
    lines += bands(manifest, version_dir)
    native = manifest.get("native")
    if native:
        lines.append(
            f"  native bundle ({native['path']}): {native['bytes'] / 2**20:,.1f} MiB beside the "
            f"SavedModel's {native['savedmodel_bytes'] / 2**20:,.1f} MiB; serves "
            f"{', '.join(native['signatures'])} without TensorFlow"
        )
        lines.append(f"  {tower_line(manifest)}")
    verification = manifest.get("verification")
    if verification:
        lines.append(
            f"  verified in a fresh process: {verification['requests_replayed']} warmup requests "
            f"replayed, identical identifiers (load {verification['load_seconds']:.1f}s)"
        )
        if "native" in verification:
            checked = verification["native"]
            lines.append(
                f"  native bundle verified: {checked['requests']} requests "
                f"({checked['rows_compared']:,} query rows) answer as the SavedModel does"
            )
    return "\n".join(lines)


#: How the summary names the bundle's tower kinds (`QueryTable.kind`, None: no table).
_TOWER_KINDS = {
    TOWER_STRING: "string table",
    TOWER_INTEGER: "integer table",
    None: "none: search_embedding only",
}


def tower_line(manifest: dict[str, Any]) -> str:
    """The query key's dtype and what the native bundle holds of the tower, and why."""
    native = manifest.get("native") or {}
    dtype = (manifest.get("query_key") or {}).get("dtype", "string")
    kind = _TOWER_KINDS.get(native.get("tower"), str(native.get("tower")))
    reason = native.get("tower_reason")
    return f"query key {dtype}; native query tower: {kind}" + (f" ({reason})" if reason else "")


def bands(manifest: dict[str, Any], version_dir: str) -> list[str]:
    """The search-band table (knobs, worst recall, latency per band) and how it was tuned."""
    rows = manifest.get("search_bands") or []
    tuning = manifest.get("tuning") or {}
    out = []
    if "bands" in tuning:
        state = "reached" if tuning["reached"] else "NOT reached at every band (best kept)"
        budget = tuning["budget_seconds"]
        spent = f"{tuning['seconds']:.1f}s" + (f" of a {budget:g}s budget" if budget else "")
        if tuning["budget_exhausted"]:
            spent += ", budget ran out: best found kept (raise --tuning-budget)"
        measured = sum(len(b["sweep"]) for b in tuning["bands"])
        out += [
            "",
            f"  tuning ({tuning['source']}): recall >= {tuning['target_recall']} at every k "
            f"{state}; {measured} settings in {spent}; plot: {version_dir}/{tuning['plot']}",
        ]
    elif tuning.get("skipped"):
        out += ["", f"  tuning: none ({tuning['skipped']})"]
    if rows:
        out.append(
            f"  {'serves k':>10}{'leaves':>8}{'reorder':>9}{'worst recall':>14}"
            f"{'1 query p50':>13}{'brute force':>13}{'speed-up':>10}"
        )
        for row in rows:
            low, high = row["serves_k"]
            out.append(
                f"  {f'{low}..{high}':>10}{row['leaves_to_search']:>8}{row['reordering']:>9}"
                f"{row['worst_recall']:>14.4f}{row['single_p50_ms']:>10.3f} ms"
                f"{row['brute_force_single_p50_ms']:>10.3f} ms{row['speedup_single_p50']:>9.1f}x"
            )
    return out


def _index(index: dict[str, Any], bands: int = 1) -> str:
    if index.get("brute_force"):
        return "brute force (exact)"
    if bands > 1:
        return (
            f"tree {index['num_leaves']} leaves, AH {index['dimensions_per_block']} dims/block; "
            f"search and reorder per band of k (below)"
        )
    return (
        f"tree {index['num_leaves']} leaves (search {index['num_leaves_to_search']}), "
        f"AH {index['dimensions_per_block']} dims/block, reorder {index['num_reordering_candidates']}"
    )


def table(evaluation: dict[str, Any]) -> list[str]:
    """The evaluation as a fixed-width table: accuracy, recall@k, latency per method."""
    if not evaluation:
        return []
    k = evaluation["k"]
    accuracy = evaluation.get("factorized_top_k", {})
    latency = evaluation["latency"]
    levels = sorted(int(key.removeprefix("top_")) for key in accuracy.get("scann", {}))
    head = "  " + f"{'':12}" + "".join(f"{'top-' + str(lv):>9}" for lv in levels)
    head += f"{'recall@' + str(k):>11}{'1 query p50':>13}{'batch of ' + str(latency['scann']['batch_size']):>14}"
    rows = [head]
    for key, label in (("brute_force", "brute force"), ("scann", "ScaNN")):
        acc = accuracy.get(key, {})
        recall = 1.0 if key == "brute_force" else evaluation["recall_at_k"]
        lat = latency[key]
        rows.append(
            f"  {label:12}"
            + "".join(f"{acc.get(f'top_{lv}', float('nan')):>9.4f}" for lv in levels)
            + f"{recall:>11.4f}{lat['single_p50_ms']:>10.3f} ms{lat['batch_ms']:>11.2f} ms"
        )
    by_k = evaluation.get("recall_by_k") or {}
    if by_k:
        worst = evaluation["recall_worst"]
        rows.append(
            "  recall@k vs brute force: "
            + ", ".join(f"@{at} {value:.4f}" for at, value in by_k.items())
            + f"; worst over every k served {worst['recall']:.4f} (k={worst['at']})"
        )
    rows.append(
        f"  speed-up of ScaNN over brute force: {latency['speedup_single_p50']:.1f}x per query "
        f"(p50), {latency['speedup_batch']:.1f}x per batch; recall@{k} through the exported op "
        f"{evaluation.get('recall_at_k_exported_index', float('nan')):.4f}"
    )
    return rows
