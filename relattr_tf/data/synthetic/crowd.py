"""A simulated crowd of annotators who compare two images on one attribute.

Each worker perceives the measured difference plus noise, answers "more" / "less" / "equal"
(equal below a just-noticeable difference), gives a confidence, and marks the pair illegible
when the attribute cannot be read on either image. Majority vote gives the label with the same
fields the real data sets carry: target, agreement (fraction voting with the majority) and mean
confidence. Used by the benchmark generator and, later, to label generated pairs.
"""
import dataclasses
import zlib

import numpy as np

MORE, LESS, EQUAL, ILLEGIBLE = "more", "less", "equal", "illegible"
TARGET_OF = {MORE: 1.0, LESS: 0.0, EQUAL: 0.5}


@dataclasses.dataclass(frozen=True)
class Crowd:
    """Noise and thresholds are in units of the attribute's scale (its typical spread)."""
    workers: int = 5
    noise: float = 0.04  # std of a worker's perception error
    jnd: float = 0.03  # |perceived difference| below this is answered "equal"
    slip_illegible: float = 0.02  # chance a worker marks a readable pair illegible anyway
    confidence_scale: float = 0.1

    def answers(self, strength_a, strength_b, scale, rng):
        """(answers, confidences) of every worker for one pair of measured strengths."""
        if not (np.isfinite(strength_a) and np.isfinite(strength_b)):
            return [ILLEGIBLE] * self.workers, np.zeros(self.workers)
        perceived = (strength_a - strength_b) / scale + rng.normal(0.0, self.noise, self.workers)
        slips = rng.uniform(size=self.workers) < self.slip_illegible
        answers = [ILLEGIBLE if slip else EQUAL if abs(d) < self.jnd else MORE if d > 0 else LESS
                   for d, slip in zip(perceived, slips)]
        confidences = 1.0 - np.exp(-np.abs(perceived) / self.confidence_scale)
        return answers, np.where(slips, 0.0, confidences)

    def label(self, strength_a, strength_b, scale, rng):
        """Majority vote: dict(target, agreement, confidence), or None if the pair is illegible.

        Ties between "more" and "less", or with "equal", resolve to equal (t = 0.5).
        """
        return majority_vote(*self.answers(strength_a, strength_b, scale, rng))


def majority_vote(answers, confidences):
    """Several answers on one pair -> dict(target, agreement, confidence), or None when more
    than half say illegible. Ties between "more" and "less", or with "equal", resolve to equal
    (t = 0.5); agreement is the winning answer's share of all answers, confidence the mean
    over the legible answers (None where none was given). The rule of the benchmark's crowd
    and of imported human labels alike."""
    votes = {k: list(answers).count(k) for k in (MORE, LESS, EQUAL, ILLEGIBLE)}
    if votes[ILLEGIBLE] * 2 > len(answers):
        return None
    top = max(votes[MORE], votes[LESS], votes[EQUAL])
    winners = [k for k in (MORE, LESS, EQUAL) if votes[k] == top]
    choice = winners[0] if len(winners) == 1 else EQUAL
    legible = [c for a, c in zip(answers, confidences) if a != ILLEGIBLE and c is not None]
    return dict(target=TARGET_OF[choice], agreement=votes[choice] / len(answers),
                confidence=float(np.mean(legible)) if legible else None)


def pair_rng(seed, *keys):
    """A generator seeded by the run seed and a stable hash of the pair's identity."""
    digest = zlib.crc32("|".join(str(k) for k in keys).encode("utf-8"))
    return np.random.default_rng([seed, digest])


def true_target(strength_a, strength_b):
    if not (np.isfinite(strength_a) and np.isfinite(strength_b)):
        return None
    return 1.0 if strength_a > strength_b else 0.0 if strength_a < strength_b else 0.5
