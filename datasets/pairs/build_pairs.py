"""Build the labelled verifier pairs from the hand-written seeds.

``python datasets/pairs/build_pairs.py`` writes ``train.jsonl`` (rows with
``split`` = ``train`` or ``dev``) and ``heldout.jsonl``; ``--check`` rebuilds in
memory and fails if the files differ. Seeds (``seeds/<domain>.txt``) hold
questions, hand-written paraphrases and traps; noise (``noise.py``) and rule
traps (``traps.py``) are generated with a seeded RNG from split-specific
templates. Held-out domains and templates never occur in the training split.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import noise  # noqa: E402
import traps  # noqa: E402

HERE = Path(__file__).resolve().parent
HELDOUT_DOMAINS = ("travel", "finance", "time_sensitive")
CATEGORY = {"support": "support", "billing": "support", "retail": "support",
            "health": "medical", "coding": "code", "factual": "factual", "howto": "howto",
            "travel": "howto", "finance": "factual", "time_sensitive": "time_sensitive"}
_BRACED = re.compile(r"\{([^}]+)\}")


@dataclass
class Seed:
    domain: str
    question: str  # with {entity} markers
    paraphrases: list[str]
    traps: list[tuple[str, str]] = field(default_factory=list)


def plain(text: str) -> str:
    return _BRACED.sub(r"\1", text)


def parse_seeds(path: Path) -> tuple[list[Seed], list[list[str]]]:
    seeds, pools = [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            pools.append([x.strip() for x in line[1:].split(",")])
            continue
        body, _, trap_part = line.partition("||")
        parts = [p.strip() for p in body.split("|")]
        seed = Seed(path.stem, parts[0], parts[1:])
        for item in filter(None, (t.strip() for t in trap_part.split(";"))):
            kind, _, text = item.partition(":")
            seed.traps.append((kind.strip(), text.strip()))
        seeds.append(seed)
    return seeds, pools


def entity_traps(seed: Seed, pools: list[list[str]], rng: random.Random):
    """For each braced entity: (template, question with it swapped, paraphrase swapped)."""
    out = []
    for name in dict.fromkeys(_BRACED.findall(seed.question)):
        pool = next((p for p in pools if name in p), None)
        if pool is None:
            raise ValueError(f"{seed.domain}: entity {name!r} is in no pool")
        new = rng.choice([x for x in pool if x != name])

        def swap(t: str, name: str = name, new: str = new) -> str:
            return plain(t.replace("{" + name + "}", new))

        para = rng.choice(seed.paraphrases)
        out.append((f"entity:{name}->{new}", swap(seed.question),
                    swap(para) if "{" + name + "}" in para else None))
    return out


def _row(cached, query, hit, seed, kind, template, **extra):
    return {"cached": cached, "query": query, "should_hit": hit,
            "category": CATEGORY[seed.domain], "kind": kind, "domain": seed.domain,
            "template": template, **extra}


def _changed_words(a: str, b: str) -> frozenset[str]:
    return frozenset(set(re.findall(r"\w+", b.lower())) - set(re.findall(r"\w+", a.lower())))


def hit_rows(seed: Seed, rng: random.Random, tpl: noise.NoiseTemplates) -> list[dict]:
    q, paras = plain(seed.question), [plain(p) for p in seed.paraphrases]
    rows = [_row(q, p, True, seed, "paraphrase", "hand") for p in paras]
    rows += [_row(a, b, True, seed, "paraphrase", "hand:pair")
             for i, a in enumerate(paras) for b in paras[i + 1 :]]
    for edits in (1, 2, 3, rng.choice([2, 4])):
        rows.append(_row(q, noise.add_typos(q, edits, rng, tpl), True, seed, "typo",
                         f"typo:{edits}", typo_edits=edits))
    para = rng.choice(paras)
    rows.append(_row(q, noise.add_typos(para, 2, rng, tpl), True, seed, "paraphrase_typo",
                     "hand+typo:2", typo_edits=2))
    filled, name = noise.add_filler(q, rng, tpl)
    rows.append(_row(q, filled, True, seed, "filler", name))
    filled, name = noise.add_filler(noise.add_typos(q, 1, rng, tpl), rng, tpl)
    rows.append(_row(q, filled, True, seed, "filler", name + "+typo:1", typo_edits=1))
    filled, name = noise.add_filler(para, rng, tpl)
    rows.append(_row(q, filled, True, seed, "filler", "hand+" + name))
    cased, name = noise.recase(q, rng, tpl)
    rows.append(_row(q, cased, True, seed, "exact", name))
    return [r for r in rows if r["cached"] != r["query"]]


def trap_rows(seed, pools, others, rng, tpl, rules, heldout) -> list[dict]:
    q, paras = plain(seed.question), [plain(p) for p in seed.paraphrases]
    found: list[tuple[str, str, str]] = [(k, t, "hand") for k, t in seed.traps]
    found += traps.rule_traps(q, rules, rng)
    number = traps.change_number(q, rng, heldout)
    if number is not None:
        found.append(("number_swap", number, "number"))
    rows = [_row(q, t, False, seed, kind, name) for kind, t, name in found]
    for name, swapped, para_swapped in entity_traps(seed, pools, rng):
        rows.append(_row(q, swapped, False, seed, "entity_swap", name))
        rows.append(_row(rng.choice(paras), swapped, False, seed, "entity_swap", "hand+" + name))
        if para_swapped:
            rows.append(_row(q, para_swapped, False, seed, "entity_swap", name + "+hand"))
        found.append(("entity_swap", swapped, name))
    for kind, t, name in rng.sample(found, min(3, len(found))):
        protect = _changed_words(q, t)
        rows.append(_row(rng.choice(paras), t, False, seed, kind, "hand+" + name))
        typo_t = noise.add_typos(t, rng.choice([1, 2]), rng, tpl, protect)
        rows.append(_row(q, typo_t, False, seed, kind, name + "+typo"))
        filled, fname = noise.add_filler(t, rng, tpl)
        rows.append(_row(q, filled, False, seed, kind, f"{name}+{fname}"))
    for other in rng.sample(others, 2):
        rows.append(_row(q, plain(rng.choice([other.question, *other.paraphrases])), False,
                         seed, "related", "other_seed"))
    return rows


def build() -> tuple[list[dict], list[dict]]:
    train, heldout = [], []
    for path in sorted((HERE / "seeds").glob("*.txt")):
        seeds, pools = parse_seeds(path)
        is_heldout = path.stem in HELDOUT_DOMAINS
        tpl = noise.HELDOUT if is_heldout else noise.TRAIN
        rules = traps.HELDOUT_RULES if is_heldout else traps.TRAIN_RULES
        for seed in seeds:
            rng = random.Random(zlib.crc32(seed.question.encode()))
            others = [s for s in seeds if s is not seed]
            rows = hit_rows(seed, rng, tpl) + trap_rows(seed, pools, others, rng, tpl,
                                                        rules, is_heldout)
            split = "heldout" if is_heldout else (
                "dev" if zlib.crc32(seed.question.encode()) % 6 == 0 else "train")
            for r in rows:
                if rng.random() < 0.3 and r["kind"] not in ("typo", "filler", "exact"):
                    r["cached"], r["query"] = r["query"], r["cached"]
                r["split"] = split
                r["seed"] = plain(seed.question)
            (heldout if is_heldout else train).extend(_dedupe(rows))
    return train, heldout


def _dedupe(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        key = (r["cached"], r["query"])
        if key not in seen and r["cached"] != r["query"]:
            seen.add(key)
            out.append(r)
    return out


def _dump(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def summary(name: str, rows: list[dict]) -> str:
    hits = sum(r["should_hit"] for r in rows)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return f"{name}: {len(rows)} rows ({hits} hit, {len(rows) - hits} miss) {kinds}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = ap.parse_args(argv)
    train, heldout = build()
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        path, text = HERE / name, _dump(rows)
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"{name} differs from a rebuild", file=sys.stderr)
                return 1
        else:
            path.write_text(text)
        print(summary(name, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
