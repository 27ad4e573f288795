"""Near-duplicate captions for the audit: MinHash LSH against exact all-pairs Jaccard.

Real texts: the PathGen-1.6M caption sample in the shared data folder (5,000 captions), plus
``--planted`` light rewordings of random captions (a word appended, punctuation spaced) so that
there are known near-duplicates to find. Baseline, in the same run: the exact Jaccard of every
pair of word 3-gram sets (what LSH approximates; quadratic). Reported: seconds of each, the speed
ratio, and the recall of LSH on the pairs the exact search finds at the threshold (goal >= 0.95).

    python benchmarks/audit_near_duplicates.py --out bench-audit.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from pathgen.audit.caption_quality import _shingles, jaccard, near_duplicates
from pathgen.sample_data import candidates, shared_data


def exact_pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    sets = [_shingles(t) for t in texts]
    found = set()
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            if jaccard(sets[i], sets[j]) >= threshold:
                found.add((i, j))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="real captions used (exact search is quadratic)")
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--out", type=Path, default=Path("bench-audit-near-duplicates.json"))
    args = parser.parse_args()

    source = (shared_data() or candidates()[0]) / "captions" / "pathgen-1.6m-sample.json"
    texts = [r["caption"] for r in json.loads(source.read_text())][: args.n]
    rng = random.Random(0)
    for i in rng.sample(range(len(texts)), args.planted):
        texts.append(texts[i].replace(",", " ,", 1) + " Noted.")

    t0 = time.perf_counter()
    lsh = {(i, j) for i, j, _ in near_duplicates(texts, args.threshold)}
    t_lsh = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = exact_pairs(texts, args.threshold)
    t_exact = time.perf_counter() - t0
    recall = len(lsh & exact) / len(exact) if exact else 1.0
    result = {
        "captions": len(texts),
        "threshold": args.threshold,
        "exact_pairs": len(exact),
        "lsh_pairs": len(lsh),
        "recall": round(recall, 4),
        "false_positives": len(lsh - exact),
        "lsh_s": round(t_lsh, 3),
        "exact_s": round(t_exact, 3),
        "speedup_vs_exact": round(t_exact / t_lsh, 1),
    }
    print(f"{'method':<22}{'seconds':>10}{'pairs':>8}")
    print(f"{'exact all-pairs':<22}{t_exact:>10.2f}{len(exact):>8}")
    print(f"{'MinHash LSH (audit)':<22}{t_lsh:>10.2f}{len(lsh):>8}")
    print(
        f"speed-up {result['speedup_vs_exact']}x, recall {recall:.3f}, "
        f"false positives {result['false_positives']}"
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
