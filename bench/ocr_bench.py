"""Benchmark of Gate 1's ID-card reading: latency, field accuracy, memory.

Usage: .venv/bin/python bench/ocr_bench.py [--n 100] [--seed 7] [--show-failures]
       .venv/bin/python bench/ocr_bench.py --phone [--n 80] [--seed 2027] [--show-failures]

``--phone`` runs the phone-photo set of issue #15 (bench/phone_cards.py: tilt,
rotation, glare, blur, noise, JPEG, EXIF, 1.2–12 MP, rare characters,
compound surnames, split labels) through the service's own path (one decode
at the working size → card found and straightened → sharpness gate → OCR →
parse) and prints name+ID exact %, wrong accepts, readable cards rejected %,
CPU-s per card p50, each with PASS/MISS against the issue's targets.
Develop with one seed, check with another: the figures of a seed you tuned
on say nothing.

Generates N synthetic ID card fronts (different people, a real face photo as
portrait, a mix of clean and phone-like degraded photos), warms the OCR engine,
then for each card runs the path we recommend to the service: safe decode →
downscale → sharpness gate → OCR → parse. Prints p50/p95/max latency per image, exact-match accuracy of
name and ID number, peak RSS, and a verdict against the targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script from anywhere: make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.common.images import downscale_for_ocr, load_untrusted_image
from apps.verification.idcard import IdCardUnreadable, ensure_card_photo_is_sharp, parse_id_card_front
from apps.verification.integrations.ocr import OcrLine, RapidOcrEngine
from tests.fixtures.cardgen import (
    CardPerson,
    Degradation,
    face_photos,
    generate_id_card_front,
    make_person,
)

TARGET_P95_SECONDS = 1.0
TARGET_ACCURACY = 0.99

# Each card gets one of these, in rotation; the ranges are those the mobile
# capture screen is expected to let through (it asks for a retake otherwise).
DEGRADATIONS: tuple[tuple[str, Degradation | None], ...] = (
    ("clean", None),
    ("rotate+5", Degradation(rotate_deg=5)),
    ("rotate-8", Degradation(rotate_deg=-8)),
    ("blur1.5", Degradation(blur_radius=1.5)),
    ("noise14", Degradation(noise=14)),
    ("jpeg25", Degradation(jpeg_quality=25)),
    ("all", Degradation(rotate_deg=6, blur_radius=1.0, noise=8, jpeg_quality=35)),
    # A 3-megapixel phone photo with the card filling 70 % of the width.
    ("phone", Degradation(photo_size=(2000, 1500), rotate_deg=3, noise=4, jpeg_quality=85)),
)


@dataclass
class Outcome:
    person: CardPerson
    kind: str
    seconds: float
    cpu_seconds: float
    name_ok: bool
    number_ok: bool
    detail: str


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p95 of 100 values is the 95th)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


# Issue #15 targets for the phone-photo set.
TARGET_PHONE_EXACT = 0.98
TARGET_PHONE_WRONG_ACCEPTS = 0
TARGET_PHONE_REJECTED = 0.02
TARGET_PHONE_CPU_P50 = 0.5


def phone_main(arguments: argparse.Namespace) -> int:
    """The phone-photo set (issue #15): accuracy, wrong accepts, rejections, CPU per card."""
    from apps.verification.cardfinder import rectify_card
    from apps.verification.idcard import names_equivalent, read_id_card_front
    from bench.phone_cards import phone_card

    rng = random.Random(arguments.seed)
    photos = face_photos()
    print(f"generating {arguments.n} phone photos (seed {arguments.seed}) …", flush=True)
    cards = [phone_card(rng, photos[index % len(photos)]) for index in range(arguments.n)]
    engine = RapidOcrEngine()
    engine.warm_up()
    load_before = os.getloadavg()
    exact = wrong = rejected = found = turned = 0
    # Reads with an uncertain name character go to the bank's record (here:
    # the card's person, as the service's identity check would find it):
    # the same name passes, any other asks for a retake.
    confirmed = sent_back = 0
    cpu_times: list[float] = []
    reasons: dict[str, int] = {}
    for card in cards:
        cpu_started = time.process_time()
        photo = load_untrusted_image(card.data, max_side=1600)
        rectified = rectify_card(photo)
        found += rectified is not None
        image = rectified or photo
        try:
            reading = read_id_card_front(engine, image, straightened=rectified is not None)
        except IdCardUnreadable as error:
            rejected += 1
            reasons[error.code] = reasons.get(error.code, 0) + 1
            outcome = f"rejected {error.code}: {' | '.join(line.text for line in error.lines)}"
        else:
            front = reading.front
            turned += reading.image is not image
            right = names_equivalent(front.name, card.person.name) and front.id_number == card.person.id_number
            if front.name_uncertain:
                confirmed += right
                sent_back += not right
            if right:
                exact += 1
                outcome = ""
            elif front.name_uncertain:
                rejected += 1
                reasons["name_unclear"] = reasons.get("name_unclear", 0) + 1
                outcome = f"retake asked: {front.name} (uncertain {front.name_uncertain}) is not the record's name"
            else:
                wrong += 1
                outcome = f"WRONG read {front.name} {front.id_number}"
        cpu_times.append(time.process_time() - cpu_started)
        if outcome and arguments.show_failures:
            print(f"  {card.conditions}: expected {card.person.name} {card.person.id_number}; {outcome}")
    load_after = os.getloadavg()
    count = len(cards)
    cpu_p50 = statistics.median(cpu_times)
    rows = (
        ("name+ID exact", exact / count, f"≥ {TARGET_PHONE_EXACT:.0%}", exact / count >= TARGET_PHONE_EXACT, "%"),
        ("wrong accepts", wrong, f"= {TARGET_PHONE_WRONG_ACCEPTS}", wrong <= TARGET_PHONE_WRONG_ACCEPTS, "n"),
        (
            "readable rejected",
            rejected / count,
            f"≤ {TARGET_PHONE_REJECTED:.0%}",
            rejected / count <= TARGET_PHONE_REJECTED,
            "%",
        ),
        ("CPU-s per card p50", cpu_p50, f"≤ {TARGET_PHONE_CPU_P50}", cpu_p50 <= TARGET_PHONE_CPU_P50, "s"),
    )
    print(f"cards: {count}  card outline found and straightened: {found}/{count}  turned 180°: {turned}")
    print(f"rejections (retake asked): {reasons or 'none'}")
    print(
        f"names with an uncertain character: {confirmed + sent_back} "
        f"({confirmed} confirmed by the record, {sent_back} misread and sent back for a retake)"
    )
    print(
        f"CPU-s per card p95 {percentile(cpu_times, 0.95):.2f}; load average {load_before} before, {load_after} after"
    )
    for label, value, target, ok, unit in rows:
        shown = f"{value:.1%}" if unit == "%" else (f"{value:.2f} s" if unit == "s" else str(value))
        print(f"{label:<20} {shown:>8}  target {target:<6} {'PASS' if ok else 'MISS'}")
    return 0 if all(row[3] for row in rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of cards (default 100)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show-failures", action="store_true")
    parser.add_argument("--phone", action="store_true", help="the phone-photo set of issue #15")
    arguments = parser.parse_args()
    if arguments.phone:
        return phone_main(arguments)

    rng = random.Random(arguments.seed)
    photos = face_photos()
    print(f"generating {arguments.n} cards …", flush=True)
    cards: list[tuple[CardPerson, str, bytes]] = []
    for index in range(arguments.n):
        person = make_person(rng)
        kind, degrade = DEGRADATIONS[index % len(DEGRADATIONS)]
        if degrade is not None:
            degrade = dataclasses.replace(degrade, seed=index)
        cards.append((person, kind, generate_id_card_front(person, photos[index % len(photos)], degrade=degrade)))

    engine = RapidOcrEngine()
    started = time.perf_counter()
    engine.warm_up()
    print(f"engine loaded and warmed in {time.perf_counter() - started:.2f} s", flush=True)

    load_before = Path("/proc/loadavg").read_text().split()[0]
    outcomes: list[Outcome] = []
    for person, kind, data in cards:
        started = time.perf_counter()
        cpu_started = time.process_time()
        image = downscale_for_ocr(load_untrusted_image(data))
        lines: list[OcrLine] = []
        try:
            ensure_card_photo_is_sharp(image)
            lines = engine.read(image)
            card = parse_id_card_front(lines)
            name_ok, number_ok = card.name == person.name, card.id_number == person.id_number
            detail = f"read {card.name} {card.id_number}"
        except IdCardUnreadable as error:
            name_ok = number_ok = False
            detail = f"{error.code}: {' | '.join(line.text for line in lines)}"
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        outcomes.append(Outcome(person, kind, elapsed, cpu, name_ok, number_ok, detail))
    load_after = Path("/proc/loadavg").read_text().split()[0]

    latencies = [outcome.seconds for outcome in outcomes]
    count = len(outcomes)
    name_accuracy = sum(outcome.name_ok for outcome in outcomes) / count
    number_accuracy = sum(outcome.number_ok for outcome in outcomes) / count
    both_accuracy = sum(outcome.name_ok and outcome.number_ok for outcome in outcomes) / count
    # ru_maxrss is in KiB on Linux.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50, p95, worst = statistics.median(latencies), percentile(latencies, 0.95), max(latencies)

    print(f"images: {count}  (mix: {', '.join(kind for kind, _ in DEGRADATIONS)})")
    mean = statistics.fmean(latencies)
    print(f"latency per image: p50 {p50:.3f} s  p95 {p95:.3f} s  max {worst:.3f} s  mean {mean:.3f} s")
    # CPU seconds (all threads) hardly depend on what else runs on the machine;
    # wall time does. On 2 idle cores onnxruntime gives wall ≈ CPU / 2.
    cpu_times = [outcome.cpu_seconds for outcome in outcomes]
    print(
        f"cpu per image: p50 {statistics.median(cpu_times):.3f} s  p95 {percentile(cpu_times, 0.95):.3f} s  "
        f"(load average over 1 min: {load_before} before, {load_after} after)"
    )
    print(f"accuracy: name exact {name_accuracy:.1%}  id number exact {number_accuracy:.1%}  both {both_accuracy:.1%}")
    for kind, _ in DEGRADATIONS:
        subset = [outcome for outcome in outcomes if outcome.kind == kind]
        if subset:
            good = sum(outcome.name_ok and outcome.number_ok for outcome in subset)
            typical = statistics.median(outcome.seconds for outcome in subset)
            print(f"  {kind:<9} {good}/{len(subset)} both fields exact, p50 {typical:.3f} s")
    print(f"peak RSS: {peak_rss_mb:.0f} MB")
    failures = [outcome for outcome in outcomes if not (outcome.name_ok and outcome.number_ok)]
    if failures and arguments.show_failures:
        for outcome in failures:
            print(f"  FAIL {outcome.kind}: expected {outcome.person.name} {outcome.person.id_number}; {outcome.detail}")

    latency_ok = p95 < TARGET_P95_SECONDS
    accuracy_ok = min(name_accuracy, number_accuracy) >= TARGET_ACCURACY
    print(
        f"target: p95 < {TARGET_P95_SECONDS:.1f} s → {'PASS' if latency_ok else 'FAIL'} ({p95:.3f} s); "
        f"accuracy ≥ {TARGET_ACCURACY:.0%} → {'PASS' if accuracy_ok else 'FAIL'} "
        f"(name {name_accuracy:.1%}, id number {number_accuracy:.1%})"
    )
    return 0 if latency_ok and accuracy_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
