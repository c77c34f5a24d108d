"""A generator study's table from its ledger (evaluation.generator's figures per cell): a row
per attribute and goal, a column per cell (which generator, image size, seed), each goal's
bar beside its row, and a figure that misses its bar in bold."""

# (figure, what it reads, its bar, whether higher is better): the layered generator's goals.
GOALS = (("sweep_spearman", "sweep Spearman, pooled", 0.9, True),
         ("sweep_spearman_within", "sweep Spearman, within a sweep", None, True),
         ("sweep_unreadable", "unreadable sweep images (%)", 0.05, False),
         ("pair_agreement", "fine-step pairs: crowd agrees with the step (%)", 0.9, True),
         ("illegible_rate", "fine-step pairs: illegible (%)", 0.10, False),
         ("equal_rate", "fine-step pairs: answered equal (%)", "real", False),
         ("real_equal_rate", "real fine pairs: answered equal (%)", None, False),
         ("same_z_pair_agreement", "same z for both: crowd agrees (%)", None, True),
         ("same_z_illegible_rate", "same z for both: illegible (%)", None, False),
         ("measured_spread", "measured strength's spread at one y (scale units; step 0.03-0.15)",
          None, False),
         ("same_z_measured_spread", "the same, same z for both", None, False),
         ("reconstruction_spearman", "held-out reconstructions keep it (Spearman)", None, True),
         ("reconstruction_unreadable", "unreadable on reconstructions (%)", None, False))
PERCENT = {"sweep_unreadable", "pair_agreement", "illegible_rate", "equal_rate",
           "real_equal_rate", "reconstruction_unreadable",
           "same_z_pair_agreement", "same_z_illegible_rate"}
# Whole-generator figures: (key, what it reads, format).
OVERALL = (("sharpness", "sharpness: high-frequency energy / real images'", ".2f"),
           ("heldout_reconstruction_mse", "reconstruction MSE (held out)", ".4f"),
           ("blur_2px_mse", "MSE of a 2 px box blur (reference)", ".4f"),
           ("blur_4px_mse", "MSE of a 4 px box blur (reference)", ".4f"),
           ("images_per_second", "images per second", ".0f"))


def column_name(record):
    cell = record["cell"]
    name = cell.get("model") or record["metrics"].get("kind", "")
    name += ", background reads y" if cell.get("background_y") else ""
    name += f", {cell['precision']}" if cell.get("precision") else ""
    return f"{name} {cell.get('image_size', '')} px seed {cell.get('seed', '')}"


EQUAL_RATE_POINTS = 0.05  # the equal rate's goal: within 5 points of the real fine pairs'


TOLERANCE = 1e-9  # a figure exactly at its bar (5 of 100 images) meets it


def _missing(value):
    return value is None or value != value  # missing or NaN


def _missed(value, bar, higher, entry):
    """Whether a goal with this bar is missed; a missing figure (or reference) misses it."""
    if bar is None:
        return False
    if bar == "real":
        real = entry.get("real_equal_rate")
        return _missing(value) or _missing(real) or \
            abs(value - real) > EQUAL_RATE_POINTS + TOLERANCE
    return _missing(value) or (value < bar - TOLERANCE if higher else value > bar + TOLERANCE)


def mse_missed(result):
    """The reconstruction goal: held-out MSE at most the 2 px blur's."""
    blur = result.get("blur_2px_mse")
    return _missing(blur) or _missed(result.get("heldout_reconstruction_mse"), blur, False, {})


def goals_missed(result):
    """[(attribute, figure)] of the goals an evaluation (evaluation.generator, with the
    held-out reconstruction MSE and its blur references) misses, as the table bolds them; a
    missing figure misses its goal. Empty: every goal is met."""
    out = [(name, key) for name, entry in result["attributes"].items()
           for key, _, bar, higher in GOALS if _missed(entry.get(key), bar, higher, entry)]
    return out + ([("", "heldout_reconstruction_mse")] if mse_missed(result) else [])


def _format(key, value, bar, higher, entry):
    if _missing(value):
        return "" if bar is None else "**n/a**"
    scale = 100 if key in PERCENT else 1
    text = f"{scale * value:.1f}" if key in PERCENT else f"{value:.2f}"
    return f"**{text}**" if _missed(value, bar, higher, entry) else text


def generator_table(records):
    """(header, rows, csv_header, csv_rows) for evaluation.studies."""
    records = sorted(records, key=column_name)
    columns = [column_name(r) for r in records]
    header = ["attribute", "figure", "goal"] + columns
    names = list(dict.fromkeys(a for r in records for a in r["metrics"]["attributes"]))
    rows = []
    for name in names:
        for key, label, bar, higher in GOALS:
            goal = "" if bar is None else "real ± 5" if bar == "real" else (
                f"{'≥' if higher else '≤'} {100 * bar:.0f}" if key in PERCENT else f"≥ {bar}")
            rows.append([name, label, goal] + [
                _format(key, r["metrics"]["attributes"].get(name, {}).get(key), bar, higher,
                        r["metrics"]["attributes"].get(name, {}))
                for r in records])
    for key, label, spec in OVERALL:
        if any(key in r["metrics"] for r in records):
            goal = key == "heldout_reconstruction_mse"
            cells = [format(r["metrics"][key], spec) if key in r["metrics"] else ""
                     for r in records]
            cells = [f"**{c}**" if goal and c and mse_missed(r["metrics"]) else c
                     for c, r in zip(cells, records)]
            rows.append(["", label, "≤ 2 px blur's" if goal else ""] + cells)
    csv_rows = [[c.replace(",", ";") for c in row] for row in rows]
    return header, rows, header, csv_rows
