"""Build the hard-negative dev set and validate both labelled splits.

The dev pairs are written by hand below, one *seed* question at a time: its
paraphrases, an optional reordering, and hard negatives that change a single
word or number. Typo and exact-duplicate hits are derived deterministically
from each seed (a seeded RNG keyed on the text), so a rebuild is byte-identical.

The held-out split (``hardneg_heldout.jsonl``) was written separately, in a
different style, and frozen before any verifier rule existed; this script only
validates it.

Usage::

    python benchmarks/data/build_hardneg.py            # rebuild dev, validate both
    python benchmarks/data/build_hardneg.py --check    # validate only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CATEGORIES = (
    "code", "factual", "howto", "conversational", "time_sensitive", "math", "support", "medical",
)
HIT_KINDS = ("paraphrase", "typo", "reorder", "exact")
MISS_KINDS = ("negation", "entity_swap", "number_swap", "scope_change", "time_shift")


def _rng(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:12], 16))


def make_typo(text: str) -> str:
    """One keyboard-style slip (swap, drop or double a letter) in a longer word."""
    rng = _rng(text)
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if re.fullmatch(r"[a-z]{5,}[?,.]?", w)]
    idx = idx or [i for i, w in enumerate(words) if re.fullmatch(r"[A-Za-z]{4,}[?,.]?", w)]
    if not idx:
        raise ValueError(f"no word long enough for a typo in {text!r}")
    i = rng.choice(idx)
    w = words[i].rstrip("?,.")
    tail = words[i][len(w):]
    p = rng.randrange(1, len(w) - 2)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap":
        w = w[:p] + w[p + 1] + w[p] + w[p + 2:]
    elif op == "drop":
        w = w[:p] + w[p + 1:]
    else:
        w = w[:p] + w[p] + w[p:]
    words[i] = w + tail
    return " ".join(words)


def make_exact(text: str) -> str:
    """The same question with only case, spacing or final punctuation changed."""
    rng = _rng("exact:" + text)
    choice = rng.randrange(3)
    if choice == 0:
        return text.lower()
    if choice == 1:
        return text.rstrip("?.!") if text[-1] in "?.!" else text + "?"
    return "  " + text.replace(" ", "  ", 1) + " "


def build_dev() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, (category, cached, hits, misses) in enumerate(SEEDS):
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} in seed {cached!r}")
        variants: list[tuple[str, str]] = list(hits)
        variants.append((make_typo(cached), "typo"))
        if n % 3 == 0:
            variants.append((make_exact(cached), "exact"))
        variants += list(misses)
        for query, kind in variants:
            rows.append({
                "cached": cached, "query": query, "should_hit": kind in HIT_KINDS,
                "category": category, "kind": kind,
            })
    return rows


def validate(rows: list[dict[str, object]], name: str) -> None:
    """Check the schema and print the balance; raise ValueError on a bad row."""
    seen: set[tuple[object, object]] = set()
    for i, r in enumerate(rows):
        if set(r) != {"cached", "query", "should_hit", "category", "kind"}:
            raise ValueError(f"{name}:{i + 1}: unexpected keys {sorted(r)}")
        if r["category"] not in CATEGORIES:
            raise ValueError(f"{name}:{i + 1}: unknown category {r['category']!r}")
        if r["kind"] not in HIT_KINDS + MISS_KINDS:
            raise ValueError(f"{name}:{i + 1}: unknown kind {r['kind']!r}")
        if r["should_hit"] != (r["kind"] in HIT_KINDS):
            raise ValueError(f"{name}:{i + 1}: should_hit disagrees with kind")
        key = (r["cached"], r["query"])
        if key in seen:
            raise ValueError(f"{name}:{i + 1}: duplicate pair {key}")
        seen.add(key)
    print(f"{name}: {len(rows)} pairs")
    print("  hits/misses:", Counter("hit" if r["should_hit"] else "miss" for r in rows))
    print("  categories:", dict(Counter(r["category"] for r in rows)))
    print("  kinds:", dict(Counter(r["kind"] for r in rows)))


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="validate only, do not rebuild dev")
    args = ap.parse_args()
    dev_path = HERE / "hardneg_dev.jsonl"
    if not args.check:
        rows = build_dev()
        validate(rows, "dev (built)")
        dev_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    validate(_read(dev_path), dev_path.name)
    validate(_read(HERE / "hardneg_heldout.jsonl"), "hardneg_heldout.jsonl")



# --------------------------------------------------------------------------------------------
# Seeds: (category, cached question, hand-written hits, hand-written hard negatives).
# --------------------------------------------------------------------------------------------
Pair = tuple[str, str]


def P(q: str) -> Pair:
    return (q, "paraphrase")


def R(q: str) -> Pair:
    return (q, "reorder")


def NEG(q: str) -> Pair:
    return (q, "negation")


def ENT(q: str) -> Pair:
    return (q, "entity_swap")


def NUM(q: str) -> Pair:
    return (q, "number_swap")


def SCO(q: str) -> Pair:
    return (q, "scope_change")


def TIM(q: str) -> Pair:
    return (q, "time_shift")


SEEDS: list[tuple[str, str, list[Pair], list[Pair]]] = [
    # ---- code ----
    ("code", "How do I reverse a list in Python?",
     [P("What is the way to invert the order of a Python list?"), R("In Python, how do I reverse a list?")],
     [ENT("How do I reverse a list in Rust?"), NEG("How do I sort a list in Python?"),
      SCO("How do I reverse a nested list in Python?")]),
    ("code", "How can I enable debug logging in Django?",
     [P("What's the way to turn on debug-level logging in a Django project?"),
      R("In Django, how can I enable debug logging?")],
     [NEG("How can I disable debug logging in Django?"), ENT("How can I enable debug logging in Flask?"),
      SCO("How can I enable debug logging in Django for only one app?")]),
    ("code", "How do I remove duplicate rows from a pandas DataFrame?",
     [P("What's the best way to drop duplicated rows in a pandas DataFrame?")],
     [NEG("How do I keep duplicate rows in a pandas DataFrame?"),
      ENT("How do I remove duplicate rows from a Spark DataFrame?"),
      SCO("How do I remove duplicate columns from a pandas DataFrame?")]),
    ("code", "How do I install Node.js version 18 on Ubuntu?",
     [P("What are the steps to set up Node.js 18 on an Ubuntu machine?"),
      R("On Ubuntu, how do I install Node.js version 18?")],
     [NUM("How do I install Node.js version 20 on Ubuntu?"), ENT("How do I install Node.js version 18 on Windows?"),
      NEG("How do I uninstall Node.js version 18 on Ubuntu?")]),
    ("code", "What is the difference between a process and a thread?",
     [P("How does a thread differ from a process?")],
     [ENT("What is the difference between a process and a coroutine?"),
      ENT("What is the difference between a process and a program?")]),
    ("code", "How do I convert a string to an integer in Java?",
     [P("What's the way to parse a string into an int in Java?"), R("In Java, how do I convert a string to an integer?")],
     [NEG("How do I convert an integer to a string in Java?"), ENT("How do I convert a string to an integer in C#?"),
      ENT("How do I convert a string to a float in Java?")]),
    ("code", "Why is my React component rendering twice?",
     [P("What causes a React component to render two times?")],
     [NUM("Why is my React component rendering three times?"), ENT("Why is my Vue component rendering twice?"),
      NEG("Why is my React component not rendering?")]),
    ("code", "How do I add an index to a PostgreSQL table?",
     [P("What is the SQL to create an index on a table in PostgreSQL?"), R("In PostgreSQL, how do I add an index to a table?")],
     [NEG("How do I remove an index from a PostgreSQL table?"), ENT("How do I add an index to a MySQL table?"),
      SCO("How do I add a unique index to a PostgreSQL table?")]),
    ("code", "How do I read the first 10 lines of a file in bash?",
     [P("What command prints the first ten lines of a file in bash?")],
     [SCO("How do I read the last 10 lines of a file in bash?"), NUM("How do I read the first 100 lines of a file in bash?"),
      ENT("How do I read the first 10 lines of a file in PowerShell?")]),
    ("code", "How do I run a Docker container in the background?",
     [P("What's the way to start a Docker container in detached mode?")],
     [NEG("How do I stop a Docker container in the background?"), ENT("How do I run a Podman container in the background?"),
      SCO("How do I run every Docker container in the background?")]),
    # ---- factual ----
    ("factual", "What is the capital of Australia?",
     [P("Which city is Australia's capital?"), R("Australia's capital is which city?")],
     [ENT("What is the capital of Austria?"), ENT("What is the largest city of Australia?")]),
    ("factual", "When did the Berlin Wall fall?",
     [P("In which year did the Berlin Wall come down?")],
     [NEG("When was the Berlin Wall built?"), ENT("When did the Roman Empire fall?")]),
    ("factual", "Who painted the Mona Lisa?",
     [P("Which artist created the Mona Lisa?"), R("The Mona Lisa was painted by whom?")],
     [ENT("Who painted The Starry Night?"), ENT("Who stole the Mona Lisa?")]),
    ("factual", "How many moons does Jupiter have?",
     [P("What is the number of moons orbiting Jupiter?")],
     [ENT("How many moons does Saturn have?"), ENT("How many rings does Jupiter have?"),
      SCO("How many large moons does Jupiter have?")]),
    ("factual", "What is the boiling point of water at sea level in Celsius?",
     [P("At sea level, at what temperature in Celsius does water boil?")],
     [NEG("What is the freezing point of water at sea level in Celsius?"),
      ENT("What is the boiling point of water at sea level in Fahrenheit?"),
      ENT("What is the boiling point of ethanol at sea level in Celsius?")]),
    ("factual", "Who was the first person to walk on the Moon?",
     [P("Which astronaut first set foot on the Moon?")],
     [SCO("Who was the second person to walk on the Moon?"), SCO("Who was the last person to walk on the Moon?"),
      ENT("Who was the first person to walk on Mars?")]),
    ("factual", "What is the population of Brazil in 2020?",
     [P("How many people lived in Brazil in 2020?"), R("In 2020, what was the population of Brazil?")],
     [NUM("What is the population of Brazil in 2000?"), ENT("What is the population of Argentina in 2020?"),
      ENT("What is the area of Brazil in 2020?")]),
    ("factual", "Which is the longest river in Africa?",
     [P("What is Africa's longest river?")],
     [ENT("Which is the longest river in Asia?"), NEG("Which is the shortest river in Africa?"),
      SCO("Which is the second longest river in Africa?")]),
    ("factual", "What year did World War II end?",
     [P("In which year did the Second World War come to an end?"), R("World War II ended in what year?")],
     [NUM("What year did World War I end?"), NEG("What year did World War II start?")]),
    # ---- howto ----
    ("howto", "How do I remove a red wine stain from a cotton shirt?",
     [P("What's the best way to get red wine out of a cotton shirt?")],
     [ENT("How do I remove a coffee stain from a cotton shirt?"), ENT("How do I remove a red wine stain from a silk shirt?"),
      ENT("How do I remove a red wine stain from a carpet?")]),
    ("howto", "How long should I boil an egg for a soft yolk?",
     [P("For a runny yolk, how many minutes do I boil an egg?"), R("For a soft yolk, how long should I boil an egg?")],
     [NEG("How long should I boil an egg for a hard yolk?"), NUM("How long should I boil 6 eggs for a soft yolk?"),
      ENT("How long should I poach an egg for a soft yolk?")]),
    ("howto", "How do I change a car tire safely?",
     [P("What are the steps to safely replace a tire on a car?")],
     [ENT("How do I change a bike tire safely?"), ENT("How do I rotate a car tire safely?")]),
    ("howto", "How do I set up a new Wi-Fi router?",
     [P("What steps do I follow to configure a brand new wireless router?"),
      R("A new Wi-Fi router: how do I set it up?")],
     [NEG("How do I reset a new Wi-Fi router?"), TIM("How do I set up an old Wi-Fi router?")]),
    ("howto", "How can I improve my credit score quickly?",
     [P("What are fast ways to raise my credit score?")],
     [NEG("How can I improve my credit score slowly?"), NEG("What can hurt my credit score quickly?")]),
    ("howto", "How do I plant tomatoes in a raised bed?",
     [P("What's the right way to grow tomatoes in a raised garden bed?"), R("In a raised bed, how do I plant tomatoes?")],
     [ENT("How do I plant potatoes in a raised bed?"), ENT("How do I plant tomatoes in a container?"),
      TIM("How do I plant tomatoes in a raised bed in winter?")]),
    ("howto", "How do I make a cup of coffee with a French press?",
     [P("What's the method for brewing coffee using a French press?")],
     [ENT("How do I make a cup of tea with a French press?"), ENT("How do I make a cup of coffee with an AeroPress?"),
      NUM("How do I make four cups of coffee with a French press?")]),
    ("howto", "How do I paint a wall without leaving streaks?",
     [P("What's the trick to painting a wall so there are no streaks?"), R("Without leaving streaks, how do I paint a wall?")],
     [NEG("How do I paint a wall with streaks?"), ENT("How do I paint a ceiling without leaving streaks?")]),
    ("howto", "How do I unclog a kitchen sink without chemicals?",
     [P("What can I do to clear a blocked kitchen sink without using chemicals?")],
     [NEG("How do I unclog a kitchen sink with chemicals?"), ENT("How do I unclog a bathroom sink without chemicals?")]),
    # ---- conversational ----
    ("conversational", "Can you tell me a joke about cats?",
     [P("Tell me something funny about cats."), R("About cats, can you tell me a joke?")],
     [ENT("Can you tell me a joke about dogs?"), NUM("Can you tell me three jokes about cats?")]),
    ("conversational", "What should I do this weekend if it rains?",
     [P("Any ideas for what to do on a rainy weekend?")],
     [NEG("What should I do this weekend if it doesn't rain?"), TIM("What should I do next weekend if it rains?"),
      NEG("What should I do this weekend if it snows?")]),
    ("conversational", "Recommend a good science fiction book for a beginner.",
     [P("Which sci-fi novel would you suggest for someone new to the genre?")],
     [ENT("Recommend a good fantasy book for a beginner."), SCO("Recommend a good science fiction book for an expert."),
      NUM("Recommend five good science fiction books for a beginner.")]),
    ("conversational", "How are you doing today?",
     [P("How's your day going?"), R("Today, how are you doing?")],
     [TIM("How were you doing yesterday?")]),
    ("conversational", "Write a short poem about the ocean.",
     [P("Compose a brief poem about the sea.")],
     [ENT("Write a short poem about the desert."), SCO("Write a long poem about the ocean."),
      ENT("Write a short story about the ocean.")]),
    ("conversational", "What's a good name for a golden retriever puppy?",
     [P("Suggest a nice name for a golden retriever puppy."), R("For a golden retriever puppy, what's a good name?")],
     [ENT("What's a good name for a black labrador puppy?"), NEG("What's a bad name for a golden retriever puppy?")]),
    ("conversational", "Give me a motivational quote for Monday morning.",
     [P("Share an inspiring quote to start my Monday.")],
     [TIM("Give me a motivational quote for Friday morning."), NUM("Give me ten motivational quotes for Monday morning."),
      NEG("Give me a depressing quote for Monday morning.")]),
    ("conversational", "Can you help me plan a birthday party for a 10 year old?",
     [P("I need help organising a birthday party for a ten-year-old.")],
     [NUM("Can you help me plan a birthday party for a 16 year old?"),
      ENT("Can you help me plan a retirement party for a 10 year old?")]),
    # ---- time_sensitive ----
    ("time_sensitive", "What is the weather in Paris today?",
     [P("How's the weather in Paris today?"), R("Today, what is the weather in Paris?")],
     [TIM("What was the weather in Paris yesterday?"), ENT("What is the weather in London today?"),
      TIM("What is the weather in Paris this week?")]),
    ("time_sensitive", "What is the current price of Bitcoin?",
     [P("How much is one Bitcoin worth right now?")],
     [ENT("What is the current price of Ethereum?"), TIM("What was the price of Bitcoin last year?")]),
    ("time_sensitive", "Who won the Champions League final this year?",
     [P("Which team won this year's Champions League final?")],
     [TIM("Who won the Champions League final last year?"), ENT("Who won the Europa League final this year?"),
      NEG("Who lost the Champions League final this year?")]),
    ("time_sensitive", "What are the latest news headlines today?",
     [P("Show me today's top news headlines."), R("Today, what are the latest news headlines?")],
     [TIM("What were the news headlines yesterday?"), ENT("What are the latest sports headlines today?")]),
    ("time_sensitive", "What is the stock price of Apple right now?",
     [P("How much is Apple stock trading at currently?")],
     [ENT("What is the stock price of Microsoft right now?"), TIM("What was the stock price of Apple in 2019?")]),
    ("time_sensitive", "Is the Golden Gate Bridge open today?",
     [P("Can I cross the Golden Gate Bridge today, is it open?")],
     [NEG("Is the Golden Gate Bridge closed today?"), TIM("Is the Golden Gate Bridge open tomorrow?"),
      ENT("Is the Bay Bridge open today?")]),
    ("time_sensitive", "What time does the sun set in Tokyo today?",
     [P("When is sunset in Tokyo today?"), R("Today, what time does the sun set in Tokyo?")],
     [NEG("What time does the sun rise in Tokyo today?"), ENT("What time does the sun set in Seoul today?"),
      TIM("What time does the sun set in Tokyo on Friday?")]),
    ("time_sensitive", "What is the current inflation rate in the United States?",
     [P("What's the US inflation rate at the moment?")],
     [TIM("What was the inflation rate in the United States in 2021?"),
      ENT("What is the current inflation rate in the United Kingdom?"),
      ENT("What is the current unemployment rate in the United States?")]),
    ("time_sensitive", "Which movies are showing in theaters this week?",
     [P("What films are playing in cinemas this week?")],
     [TIM("Which movies are showing in theaters next week?"), TIM("Which movies were showing in theaters last month?")]),
    # ---- math ----
    ("math", "What is 15% of 80?",
     [P("Calculate fifteen percent of 80."), R("Of 80, what is 15%?")],
     [NUM("What is 15% of 60?"), NUM("What is 25% of 80?")]),
    ("math", "What is the square root of 144?",
     [P("Compute the square root of 144.")],
     [NUM("What is the square root of 169?"), ENT("What is the cube root of 144?"), ENT("What is the square of 144?")]),
    ("math", "What is the derivative of x squared?",
     [P("Differentiate x squared."), R("Of x squared, what is the derivative?")],
     [ENT("What is the integral of x squared?"), ENT("What is the derivative of x cubed?")]),
    ("math", "How do I calculate the area of a triangle?",
     [P("What is the formula for the area of a triangle?")],
     [ENT("How do I calculate the perimeter of a triangle?"), ENT("How do I calculate the area of a rectangle?")]),
    ("math", "What is 7 times 8?",
     [P("Multiply 7 by 8."), ("What is seven times eight?", "paraphrase")],
     [NUM("What is 7 times 9?"), NEG("What is 7 plus 8?")]),
    ("math", "Is 91 a prime number?",
     [P("Is the number 91 prime?")],
     [NUM("Is 97 a prime number?"), ENT("Is 91 an even number?")]),
    ("math", "Convert 5 kilometers to miles.",
     [P("How many miles are in 5 kilometers?"), R("5 kilometers to miles, convert it.")],
     [NUM("Convert 50 kilometers to miles."), NEG("Convert 5 miles to kilometers."), ENT("Convert 5 kilometers to feet.")]),
    ("math", "What is the probability of rolling a 6 on a fair die?",
     [P("On a fair die, what are the chances of rolling a 6?")],
     [NUM("What is the probability of rolling a 3 on a fair die?"),
      NUM("What is the probability of rolling two 6s on a fair die?"),
      NEG("What is the probability of not rolling a 6 on a fair die?")]),
    ("math", "Solve the equation 2x + 5 = 15.",
     [P("Find the value of x if 2x + 5 = 15.")],
     [NUM("Solve the equation 2x + 5 = 17."), NEG("Solve the equation 2x - 5 = 15."),
      NUM("Solve the equation 3x + 5 = 15.")]),
    ("math", "What is the sum of the interior angles of a hexagon?",
     [P("What do the interior angles of a hexagon add up to?")],
     [ENT("What is the sum of the interior angles of a pentagon?"),
      NEG("What is the sum of the exterior angles of a hexagon?")]),
    # ---- support ----
    ("support", "How do I reset my password?",
     [P("I forgot my password, how can I change it?"), R("My password, how do I reset it?")],
     [ENT("How do I reset my username?"), ENT("How do I reset my PIN?")]),
    ("support", "How can I cancel my subscription?",
     [P("What's the process for ending my subscription?")],
     [NEG("How can I renew my subscription?"), NEG("How can I pause my subscription?"),
      SCO("How can I cancel my free trial?")]),
    ("support", "Why was I charged twice this month?",
     [P("Why do I see two charges on my account this month?"), R("This month, why was I charged twice?")],
     [TIM("Why was I charged twice last month?"), NUM("Why was I charged three times this month?"),
      NEG("Why was I not charged this month?")]),
    ("support", "How do I update my billing address?",
     [P("Where can I change the billing address on my account?")],
     [ENT("How do I update my shipping address?"), ENT("How do I update my email address?")]),
    ("support", "My order hasn't arrived after 10 days, what should I do?",
     [P("It's been ten days and my order still hasn't come, what can I do?")],
     [NUM("My order hasn't arrived after 3 days, what should I do?"),
      NEG("My order arrived after 10 days, what should I do?")]),
    ("support", "Can I return an item after 30 days?",
     [P("Is it possible to send an item back once 30 days have passed?"), R("After 30 days, can I return an item?")],
     [NUM("Can I return an item after 60 days?"), NEG("Can I return an item within 30 days?"),
      NEG("Can I exchange an item after 30 days?")]),
    ("support", "How do I enable two-factor authentication on my account?",
     [P("How can I turn on 2FA for my account?")],
     [NEG("How do I disable two-factor authentication on my account?"),
      SCO("How do I enable two-factor authentication on all accounts?")]),
    ("support", "The app crashes when I open it on my iPhone.",
     [P("Every time I launch the app on my iPhone it crashes."), R("When I open it on my iPhone, the app crashes.")],
     [ENT("The app crashes when I open it on my iPad."), NEG("The app crashes when I close it on my iPhone.")]),
    ("support", "How do I upgrade to the premium plan?",
     [P("What's the way to move up to the premium plan?")],
     [NEG("How do I downgrade to the premium plan?"), ENT("How do I upgrade to the family plan?"),
      NEG("How do I downgrade from the premium plan?")]),
    # ---- medical ----
    ("medical", "What is the maximum daily dose of acetaminophen for adults?",
     [P("How much acetaminophen can an adult safely take in a day at most?")],
     [NEG("What is the minimum daily dose of acetaminophen for adults?"),
      ENT("What is the maximum daily dose of acetaminophen for children?"),
      ENT("What is the maximum daily dose of naproxen for adults?")]),
    ("medical", "Can I take ibuprofen with aspirin?",
     [P("Is it safe to combine ibuprofen and aspirin?"), R("With aspirin, can I take ibuprofen?")],
     [ENT("Can I take ibuprofen with warfarin?"), ENT("Can I take acetaminophen with aspirin?"),
      NEG("Can I take ibuprofen without aspirin?")]),
    ("medical", "Is 10 mg of melatonin too much?",
     [P("Is a dose of 10 mg melatonin excessive?")],
     [NUM("Is 100 mg of melatonin too much?"), NUM("Is 1 mg of melatonin too much?"), NEG("Is 10 mg of melatonin too little?")]),
    ("medical", "What are the symptoms of type 2 diabetes?",
     [P("What signs indicate type 2 diabetes?"), R("Type 2 diabetes: what are its symptoms?")],
     [NUM("What are the symptoms of type 1 diabetes?"), ENT("What are the causes of type 2 diabetes?")]),
    ("medical", "How long does the flu usually last in adults?",
     [P("What is the typical duration of influenza in adults?")],
     [ENT("How long does a cold usually last in adults?"), ENT("How long does the flu usually last in toddlers?")]),
    ("medical", "What is a normal resting heart rate for adults?",
     [P("What resting heart rate is considered normal in adults?"), R("For adults, what is a normal resting heart rate?")],
     [NEG("What is an abnormal resting heart rate for adults?"),
      ENT("What is a normal resting heart rate for newborns?"),
      ENT("What is a normal blood pressure for adults?")]),
    ("medical", "Should I take amoxicillin before or after meals?",
     [P("Is amoxicillin best taken with food or on an empty stomach?")],
     [ENT("Should I take metformin before or after meals?"), NUM("Should I take 2 amoxicillin before or after meals?")]),
    ("medical", "Is it safe to take 500 mg of vitamin C daily?",
     [P("Can I safely take 500 mg of vitamin C every day?")],
     [NUM("Is it safe to take 5000 mg of vitamin C daily?"), ENT("Is it safe to take 500 mg of vitamin E daily?"),
      TIM("Is it safe to take 500 mg of vitamin C hourly?")]),
    ("medical", "What are the side effects of the COVID-19 vaccine?",
     [P("Which side effects can the COVID-19 vaccine cause?")],
     [ENT("What are the side effects of the shingles vaccine?"),
      SCO("What are the long-term side effects of the COVID-19 vaccine?")]),
    # ---- extra seeds weighted towards scope and time changes ----
    ("code", "How do I list all files in a directory in Python?",
     [P("What's the way to get every file in a folder with Python?")],
     [SCO("How do I list only hidden files in a directory in Python?"),
      SCO("How do I list the largest files in a directory in Python?"),
      ENT("How do I list all files in a directory in Go?")]),
    ("code", "How do I get the maximum value in a NumPy array?",
     [P("How can I find the largest element of a NumPy array?")],
     [SCO("How do I get the minimum value in a NumPy array?"), SCO("How do I get each maximum value in a NumPy array?"),
      ENT("How do I get the maximum value in a JavaScript array?")]),
    ("factual", "Who is the current president of France?",
     [P("Who leads France as president right now?")],
     [TIM("Who was the previous president of France?"), TIM("Who was the president of France in 1995?"),
      ENT("Who is the current president of Germany?")]),
    ("time_sensitive", "What are the store hours on Saturday?",
     [P("When is the store open on Saturday?")],
     [TIM("What are the store hours on Sunday?"), TIM("What are the store hours on public holidays?"),
      NEG("What are the store hours on weekdays?")]),
    ("time_sensitive", "What is the exchange rate from dollars to euros today?",
     [P("How many euros does one dollar buy today?")],
     [TIM("What was the exchange rate from dollars to euros last week?"),
      NEG("What is the exchange rate from euros to dollars today?"),
      ENT("What is the exchange rate from dollars to pounds today?")]),
    ("support", "Can I get a refund for all the items in my order?",
     [P("Is a refund possible for every item in my order?")],
     [SCO("Can I get a refund for some of the items in my order?"), SCO("Can I get a refund for one of the items in my order?"),
      SCO("Can I get a partial refund for all the items in my order?")]),
    ("support", "How do I delete my account permanently?",
     [P("What's the way to permanently remove my account?")],
     [SCO("How do I delete my account temporarily?"), NEG("How do I restore my account permanently?")]),
    ("medical", "Can I take this medicine every 4 hours?",
     [P("Is it okay to take this medication every four hours?")],
     [NUM("Can I take this medicine every 2 hours?"), TIM("Can I take this medicine every 4 days?"),
      SCO("Can I take this medicine only every 4 hours?")]),
    ("howto", "How do I clean the oven before the holidays?",
     [P("What's the best way to get the oven clean ahead of the holidays?")],
     [NEG("How do I clean the oven after the holidays?"), SCO("How do I clean the whole kitchen before the holidays?")]),
    ("conversational", "What did you think of the movie we talked about yesterday?",
     [P("Your opinion on the film we discussed yesterday?")],
     [TIM("What did you think of the movie we talked about last week?"),
      NEG("What did you dislike about the movie we talked about yesterday?")]),
    ("math", "What is the smallest prime number greater than 50?",
     [P("Find the least prime above 50.")],
     [SCO("What is the largest prime number greater than 50?"), SCO("What is the smallest prime number less than 50?"),
      NUM("What is the smallest prime number greater than 500?")]),
]


if __name__ == "__main__":
    main()
