"""Write echoforge/data/alpaca_messy.jsonl: Alpaca-style rows with messy LLM-style answers.

The rows mix markdown lists, headings, numbers, money, dates, units, percentages, code
blocks, inline code, tables, URLs and emoji, the way chat-model answers do. The file is
generated deterministically (seeded) so it can be rebuilt and reviewed:

    python scripts/make_messy_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = [
    ("bake sourdough bread", "flour", "oven", "dough"), ("plan a budget trip to Lisbon", "hostel", "tram", "museum"),
    ("start running", "shoes", "pace", "stretching"), ("learn Spanish", "vocabulary", "podcast", "grammar"),
    ("save for retirement", "index fund", "employer match", "savings account"), ("grow tomatoes", "soil", "sunlight", "watering"),
    ("write a cover letter", "opening line", "achievement", "closing"), ("reduce screen time", "notifications", "bedtime", "hobby"),
    ("care for a puppy", "vaccines", "crate", "walks"), ("prepare for a job interview", "research", "questions", "follow-up"),
    ("make cold brew coffee", "beans", "grinder", "filter"), ("clean a cast iron pan", "salt", "oil", "stove"),
    ("study for an exam", "flashcards", "schedule", "breaks"), ("paint a room", "primer", "roller", "tape"),
    ("choose a laptop", "battery", "memory", "screen"), ("meditate daily", "breathing", "posture", "timer"),
    ("organise a closet", "bins", "labels", "donations"), ("brew green tea", "temperature", "leaves", "steeping"),
    ("fix a flat bicycle tyre", "lever", "patch", "pump"), ("host a dinner party", "menu", "guests", "playlist"),
]
CITIES = ["Paris", "Tokyo", "Nairobi", "Toronto", "Sydney", "Berlin", "Lima", "Oslo", "Cairo", "Austin"]
NAMES = ["Maria", "James", "Aisha", "Chen", "Olga", "Diego", "Priya", "Samuel", "Yuki", "Fatima"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def answer(rng: random.Random, topic: tuple[str, str, str, str]) -> tuple[str, str, str]:
    task, a, b, c = topic
    n1, n2, n3 = rng.randint(2, 9), rng.randint(10, 95), rng.randint(100, 4000)
    price = f"${rng.randint(3, 250)}.{rng.randint(0, 99):02d}"
    pct = f"{rng.randint(5, 95)}%"
    year = rng.randint(1990, 2030)
    date = f"{MONTHS[rng.randrange(12)]} {rng.randint(1, 28)}, {year}"
    unit = rng.choice([f"{n2} kg", f"{n2} km", f"{n1}.5 L", f"{n2}°C", f"{n3} ml", f"{n2} mph", f"{n1} GB"])
    city, name = rng.choice(CITIES), rng.choice(NAMES)
    kind = rng.randrange(10)
    if kind == 0:
        text = (f"Here is how to {task}:\n\n1. Get a good {a} (about {price}).\n2. Check the {b} every {n1} days.\n"
                f"3. Finish with the {c}.\n\nMost people see results in {n2} days, roughly {pct} faster than expected.")
        q = f"How do I {task}?"
    elif kind == 1:
        text = (f"## Quick answer\n\nYes! **{name}** from {city} tried it on {date} and spent {price} in total.\n\n"
                f"- {a.capitalize()}: {unit}\n- {b.capitalize()}: {n3} units\n- {c.capitalize()}: {pct}\n\n"
                f"Good luck 😀")
        q = f"Is it worth it to {task} on a budget?"
    elif kind == 2:
        text = (f"You can automate part of it with a short script:\n\n```python\nitems = ['{a}', '{b}', '{c}']\n"
                f"for i, item in enumerate(items):\n    print(i, item)\n```\n\nRun it with `python plan.py` and "
                f"adjust the list. It takes about {n2} seconds.")
        q = f"Can you give me a script to track how I {task}?"
    elif kind == 3:
        text = (f"| Item | Cost |\n|---|---|\n| {a} | {price} |\n| {b} | ${n2} |\n\n"
                f"In short, budget about ${n3} for the year and expect {pct} to go on the {c}.")
        q = f"What does it cost to {task}?"
    elif kind == 4:
        text = (f"The best guide I know is at https://example.org/{a.replace(' ', '-')} and it was updated on {date}. "
                f"It says to spend {n1} hours on the {b} and keep the {c} at {unit}.")
        q = f"Where can I read more about how to {task}?"
    elif kind == 5:
        text = (f"Start with the {a}. Then move on to the {b}, which takes {n1} to {n2} minutes. "
                f"Finally, the {c}: in {year} a survey of {n3:,} people found {pct} of them skipped it, "
                f"and regretted it. Don't be one of them!")
        q = f"What order should I follow to {task}?"
    elif kind == 6:
        text = (f"*Short version:* the {a} matters most.\n\n> Tip: {name} recommends checking the {b} at "
                f"{rng.randint(1, 12)}:{rng.choice(['00', '15', '30', '45'])} pm.\n\nAfter that, the {c} is easy. "
                f"Expect to pay between {price} and ${n3}.")
        q = f"What's the one thing that matters most when you {task}?"
    elif kind == 7:
        text = (f"Step 1 — prepare the {a}.\nStep 2 — measure {unit} for the {b}.\nStep 3 — wait {n2} minutes.\n\n"
                f"That's {n1 * 3} steps fewer than most guides, and it works {pct} of the time.")
        q = f"Give me the fastest way to {task}."
    elif kind == 8:
        text = (f"1) {a.capitalize()}\n2) {b.capitalize()}\n3) {c.capitalize()}\n\nIn {city} this costs about "
                f"€{n2} per week, or roughly {price} in US dollars, as of {date}.")
        q = f"List the three things I need to {task}."
    else:
        text = (f"Great question! To {task}, think of it like compound interest: {n1} small habits, repeated "
                f"{n2} times, add up. Track the {a}, the {b} and the {c} in a notebook, and review it every "
                f"{rng.choice(['Monday', 'Friday', 'Sunday'])}.")
        q = f"Any general advice on how to {task}?"
    context = rng.choice(["", "", "", f"I live in {city}.", f"My budget is {price}."])
    return q, context, text


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20260917)
    parser.add_argument("--rows", type=int, default=320)
    parser.add_argument("--prefix", default="messy")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "echoforge" / "data" / "alpaca_messy.jsonl")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.rows):
        q, ctx, text = answer(rng, TOPICS[(i * 7 + args.seed) % len(TOPICS)])
        rows.append({"id": f"{args.prefix}-{i:04d}", "instruction": q, "input": ctx, "output": text})
    out = args.out
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
