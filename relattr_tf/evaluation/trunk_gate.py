"""The acceptance gate of a pretrained trunk: does it learn every head of its task, and does it
keep what relative attributes need?

  * every head reaches HEAD_ACCURACY held-out accuracy, or, for a head whose label cannot be
    read that well from the pixels, its measured ceiling (the head's "ceiling" entry);
  * a linear probe of the frozen trunk reads every ranked attribute at least as well as a
    random trunk of the same shape does (Spearman, held-out images), and each global attribute
    (brightness, warmth, contrast: what the whole picture shows) at GLOBAL_SPEARMAN or more.
"""
HEAD_ACCURACY = 0.90
GLOBAL_SPEARMAN = 0.90


def trunk_gate(heads, heldout_accuracy, probe, attribute_kinds):
    """{passed, checks: [{check, value, needed, passed}], failed: [check names]}.

    heads: the table's label heads; heldout_accuracy: {head: accuracy}; probe: the linear
    probe's {attribute: {spearman, spearman_random_trunk}}; attribute_kinds: {attribute:
    "global" or "local"}."""
    checks = []
    for head in heads:
        needed = min(HEAD_ACCURACY, head.get("ceiling", HEAD_ACCURACY))
        checks.append(dict(check=f"head {head['name']}", value=heldout_accuracy[head["name"]],
                           needed=needed))
    for name, reading in probe.items():
        checks.append(dict(check=f"probe {name} vs random trunk", value=reading["spearman"],
                           needed=reading["spearman_random_trunk"]))
        if attribute_kinds.get(name) == "global":
            checks.append(dict(check=f"probe {name}", value=reading["spearman"],
                               needed=GLOBAL_SPEARMAN))
    for check in checks:
        check["passed"] = bool(check["value"] >= check["needed"])
    failed = [c["check"] for c in checks if not c["passed"]]
    return dict(passed=not failed, checks=checks, failed=failed)


def verdict_line(gate):
    """One line: PASSED, or FAILED with each failing check's value and what it needed."""
    if gate["passed"]:
        return f"gate: PASSED ({len(gate['checks'])} checks)"
    failing = [c for c in gate["checks"] if not c["passed"]]
    return "gate: FAILED: " + "; ".join(f"{c['check']} {c['value']:.3f} < {c['needed']:.3f}"
                                        for c in failing)
