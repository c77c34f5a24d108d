"""The pretrained trunk's table from its ledger (cells image size x precision x seed): a row
per head (held-out accuracy, chance, the gate's bar; below it the head's oracle ceiling, where
measured) and per ranked attribute (the linear
probe's Spearman on the frozen trunk, the random trunk's, the bar), a column per cell, and
the gate's verdict."""


def _column(cell):
    drawn = "".join(f", {cell[k]} {k.replace('_', ' ')}" for k in ("scenery", "global_strengths")
                    if k in cell)
    names = lambda key: cell[key].replace("+", ", ")
    heads = f", heads {names('heads')}" if "heads" in cell else ""
    if "first_heads" in cell:
        heads += f", first {cell['first_heads_steps']:,} steps {names('first_heads')} alone"
    if "balanced_heads" in cell:
        heads += (", every head balanced" if cell["balanced_heads"] == "each" else
                  f", balanced {names('balanced_heads')}")
        if "balance_every" in cell:
            heads += f" (measured every {cell['balance_every']} steps)"
    return f"{cell['image_size']} px {cell['precision']} seed {cell['seed']}{drawn}{heads}"


def _order(records):
    return sorted(records, key=lambda r: (r["cell"]["image_size"], r["cell"]["precision"],
                                          r["cell"]["seed"], r["cell"].get("scenery", ""),
                                          r["cell"].get("global_strengths", ""),
                                          r["cell"].get("heads", ""),
                                          r["cell"].get("first_heads_steps", 0),
                                          r["cell"].get("balanced_heads", ""),
                                          r["cell"].get("balance_every", 1)))


def _union(lists):
    return list(dict.fromkeys(x for names in lists for x in names))


def pretrain_table(records):
    """(header, rows, csv_header, csv_rows) for evaluation.studies."""
    records = _order(records)
    columns = [_column(r["cell"]) for r in records]
    header = ["", "chance / random trunk"] + columns
    needed = [{c["check"]: c["needed"] for c in r["metrics"]["gate"]["checks"]}
              for r in records]
    rows = []
    checks = _union([c["check"] for c in r["metrics"]["gate"]["checks"]] for r in records)
    heads = [c[len("head "):] for c in checks if c.startswith("head ")]
    probed = [c[len("probe "):-len(" vs random trunk")] for c in checks
              if c.endswith(" vs random trunk")]
    for head in heads:
        having = [r for r in records if head in r["metrics"]["heldout_accuracy"]]
        chance = f"{100 * having[0]['metrics']['chance_accuracy'][head]:.1f}"
        rows.append([f"head {head} (accuracy %)", chance] +
                    [_mark(100 * r["metrics"]["heldout_accuracy"][head],
                           100 * n[f"head {head}"], ".1f") if r in having else ""
                     for r, n in zip(records, needed)])
        if any(head in r["metrics"].get("ceilings", {}) for r in records):
            rows.append([f"head {head}: oracle ceiling (%)", ""] + [
                f"{100 * r['metrics']['ceilings'][head]:.1f}"
                if head in r["metrics"].get("ceilings", {}) else "" for r in records])
    for name in probed:
        random = [r["metrics"]["probe"]["attributes"][name]["spearman_random_trunk"]
                  for r in records]
        rows.append([f"probe {name} (Spearman)", " / ".join(f"{v:.2f}" for v in random)] +
                    [_mark(r["metrics"]["probe"]["attributes"][name]["spearman"],
                           max(n.get(f"probe {name}", -1), n[f"probe {name} vs random trunk"]),
                           ".2f") for r, n in zip(records, needed)])
    rows.append(["gate", ""] + ["PASSED" if r["metrics"]["gate"]["passed"] else "FAILED"
                                for r in records])
    # Where along the trunk the global attributes stop being read (not gated).
    global_names = [c[len("probe "):] for c in checks
                    if c.startswith("probe ") and not c.endswith(" vs random trunk")]
    blocks = records[0]["metrics"]["probe"].get("blocks", {})
    for name in global_names:
        for block in blocks:
            rows.append([f"{name} at {block}, positions averaged (Spearman)", ""] +
                        [_figure(r["metrics"]["probe"].get("blocks", {}).get(block, {}), name)
                         for r in records])
    rows += _precision_rows(records, heads)
    csv_rows = [[c.replace(",", ";") for c in row] for row in rows]
    return header, rows, ["row", "chance_or_random_trunk"] + columns, csv_rows


def _precision_rows(records, heads):
    """Where one size and seed ran in float32 and in mixed_bfloat16: the largest held-out
    accuracy difference over the heads, in points (the check before bf16 is used)."""
    rows = []

    def drawn(cell):  # the table's draws and how its heads trained: compared only when equal
        return tuple(sorted((k, str(v)) for k, v in cell.items()
                            if k not in ("image_size", "seed", "precision")))

    by_cell = {(r["cell"]["image_size"], r["cell"]["seed"], drawn(r["cell"]),
                r["cell"]["precision"]): r for r in records}
    for (size, seed, table, precision), bf16 in sorted(by_cell.items()):
        fp32 = by_cell.get((size, seed, table, "float32"))
        if precision != "mixed_bfloat16" or fp32 is None:
            continue
        gaps = {h: 100 * (bf16["metrics"]["heldout_accuracy"][h] -
                          fp32["metrics"]["heldout_accuracy"][h]) for h in heads
                if h in bf16["metrics"]["heldout_accuracy"]}
        worst = max(gaps, key=lambda h: abs(gaps[h]))
        rows.append([f"{size} px seed {seed}: largest head difference, bf16 − float32 "
                     f"(points)", ""] + [f"{gaps[worst]:+.1f} ({worst})"
                                         if r in (bf16, fp32) else "" for r in
                                         _order(records)])
    return rows


def _figure(probes, name):
    return f"{probes[name]:.2f}" if name in probes else ""


def _mark(value, needed, spec):
    """The figure, and the bar it missed when it missed one."""
    text = format(value, spec)
    return text if value >= needed else f"**{text}** (< {format(needed, spec)})"
