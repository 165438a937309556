"""Pure scoring of a v2 answer against truth made by looking (no model, no file)."""

from __future__ import annotations

import numpy as np


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), as (n, m)."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


MATCH_IOU = 0.5
# A person is a phantom when more than this share of its boxes on labelled frames are not faces (not_face truth, or
# no truth box at all). Boxes on small or unsure truth are left out of the share; a person with no box on a labelled
# frame is not judged.
PHANTOM_SHARE = 0.5


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Optimal assignment minimising ``cost`` (rectangular allowed): the (row, column) pairs."""
    from scipy.optimize import linear_sum_assignment

    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return list(zip(rows.tolist(), cols.tolist()))


def match_frame(truth_boxes, predicted_boxes, threshold: float = MATCH_IOU) -> list[tuple[int, int]]:
    """Pairs (truth index, predicted index) of one frame among pairs with IoU >= ``threshold``: the assignment with
    the most pairs, and among those the largest summed IoU."""
    overlap = iou_matrix(truth_boxes, predicted_boxes)
    usable = overlap >= threshold
    if not usable.any():
        return []
    # Each usable pair is worth more than any number of IoU gains (at most 1 each over fewer than `bonus` pairs), so
    # one more pair always wins; unusable pairs cost more than nothing, so they are never chosen over being left out.
    bonus = min(overlap.shape) + 1
    cost = np.where(usable, -(bonus + overlap), 1.0)
    return [(t, p) for t, p in assign(cost) if usable[t, p]]


def frame_records(truth, answer: dict) -> list[dict]:
    """For every labelled frame: each predicted face's fate. One record per predicted face and per truth box:
    ``{"frame", "truth": identity or None, "kind": truth kind or None, "person": predicted person or None,
    "truth_index", "face"}``. A truth box of kind face with no prediction has person None; a prediction with no
    truth box has truth None and kind None. Predicted faces are matched to every truth box of any kind, so a
    detection of a wall patch labelled not_face is counted as such."""
    timeline = {entry["frame"]: entry["faces"] for entry in answer.get("timeline", [])}
    by_frame: dict[int, list] = {}
    for box in truth.boxes:
        by_frame.setdefault(box.frame, []).append(box)
    records = []
    for frame in truth.frames:
        boxes = by_frame.get(frame, [])
        faces = timeline.get(frame, [])
        pairs = match_frame([b.box for b in boxes], [f["box"] for f in faces])
        matched_truth = {t: p for t, p in pairs}
        matched_faces = {p for _, p in pairs}
        for t, box in enumerate(boxes):
            p = matched_truth.get(t)
            matched = faces[p] if p is not None else None
            records.append({"frame": frame, "truth": box.identity, "kind": box.kind,
                            "person": matched["person"] if matched else None, "face": matched})
        for p, face in enumerate(faces):
            if p not in matched_faces:
                records.append({"frame": frame, "truth": None, "kind": None, "person": face["person"], "face": face})
    return records


def id_scores(records: list[dict]) -> dict:
    """IDF1 (Ristani et al. 2016) over the records: the one-to-one assignment of predicted persons to true
    identities that maximises the ID true positives over the whole clip, then IDF1 = 2 IDTP / (2 IDTP + IDFP +
    IDFN). Truth boxes of kind face count (IDFN when missed or given to another person); predictions on a
    not_face box or on no box count as IDFP; predictions on small or unsure boxes, and those boxes, are left out."""
    pairs = [(r["truth"], r["person"]) for r in records if r["kind"] == "face"]
    false_predictions = [r["person"] for r in records if r["kind"] in (None, "not_face") and r["person"] is not None]
    identities = sorted({t for t, _ in pairs})
    persons = sorted({p for _, p in pairs if p is not None} | set(false_predictions))
    truth_count = {t: sum(1 for tt, _ in pairs if tt == t) for t in identities}
    predicted_count = {p: sum(1 for _, pp in pairs if pp == p) + false_predictions.count(p) for p in persons}
    together = np.zeros((len(identities), len(persons)))
    for t, p in pairs:
        if p is not None:
            together[identities.index(t), persons.index(p)] += 1
    chosen = assign(-together) if together.size else []
    idtp = float(sum(together[t, p] for t, p in chosen))
    total_truth = sum(truth_count.values())
    total_predicted = sum(predicted_count.values())
    idfn, idfp = total_truth - idtp, total_predicted - idtp
    denominator = 2 * idtp + idfp + idfn
    return {"idtp": idtp, "idfp": idfp, "idfn": idfn,
            "idf1": 2 * idtp / denominator if denominator else 1.0,
            "assignment": {identities[t]: persons[p] for t, p in chosen if together[t, p] > 0}}


def id_switches(records: list[dict]) -> int:
    """CLEAR-MOT identity switches: for each true identity, over its labelled frames in order, the times a matched
    face's person differs from the person it was last matched to (frames where it is missed do not reset it)."""
    last: dict[int, object] = {}
    switches = 0
    for record in sorted((r for r in records if r["kind"] == "face"), key=lambda r: r["frame"]):
        if record["person"] is None:
            continue
        previous = last.get(record["truth"])
        if previous is not None and previous != record["person"]:
            switches += 1
        last[record["truth"]] = record["person"]
    return switches


def person_report(records: list[dict], threshold: float = PHANTOM_SHARE) -> dict:
    """Per predicted person, on labelled frames: boxes on faces (and of which identity), on not_face truth, on no
    truth, left out (small, unsure); and whether it is a phantom (the share of not-face boxes, not_face truth plus
    no truth, among its judged boxes is over ``threshold``; a person with no judged box is not judged)."""
    report: dict = {}
    for record in records:
        if record["person"] is None:
            continue
        item = report.setdefault(record["person"], {"faces": {}, "not_face": 0, "no_truth": 0, "left_out": 0})
        if record["kind"] == "face":
            item["faces"][record["truth"]] = item["faces"].get(record["truth"], 0) + 1
        elif record["kind"] == "not_face":
            item["not_face"] += 1
        elif record["kind"] is None:
            item["no_truth"] += 1
        else:
            item["left_out"] += 1
    for item in report.values():
        bad = item["not_face"] + item["no_truth"]
        judged = bad + sum(item["faces"].values())
        item["phantom"] = bool(judged) and bad / judged > threshold
    return report


def age_band(age: float) -> str:
    """Child under 13, teen 13 to 19, adult 20 and over (the truth's bands)."""
    return "child" if age < 13 else "teen" if age < 20 else "adult"


def identity_answers(truth, answer: dict, records: list[dict]) -> dict:
    """For each labelled identity: its best-matching person (the one holding most of its matched boxes; a tie goes
    to the lower id) and, where the truth says, whether that person's gender, age band and dominant expression
    are right. ``None`` where the truth is unknown or no person holds the identity."""
    persons = {person["id"]: person for person in answer.get("persons", [])}
    out = {}
    for identity, known in sorted(truth.identities.items()):
        held: dict[int, int] = {}
        for record in records:
            if record["kind"] == "face" and record["truth"] == identity and record["person"] is not None:
                held[record["person"]] = held.get(record["person"], 0) + 1
        best = min(held, key=lambda p: (-held[p], p)) if held else None
        person = persons.get(best)
        row = {"person": best, "gender": None, "age_band": None, "expression": None,
               "answered": None if person is None else {
                   "gender": max(person["gender"], key=person["gender"].get),
                   "male": person["gender"].get("male"),
                   "age": person["age"]["value"], "age_band": age_band(person["age"]["value"]),
                   "expression": person["expression"]["dominant"]}}
        if person is not None:
            answered = row["answered"]
            if known.gender in ("male", "female"):
                row["gender"] = answered["gender"] == known.gender
            if known.age_band != "unknown":
                row["age_band"] = answered["age_band"] == known.age_band
            if known.expression != "unknown":
                row["expression"] = answered["expression"] == known.expression
        out[identity] = row
    return out


def expression_table(pairs: list[tuple[str, str]], classes: tuple[str, ...]) -> dict:
    """Per-class recall and the confusion counts of (truth, predicted) expression pairs; a class with no truth face
    has recall None."""
    confusion = {t: {p: 0 for p in classes} for t in classes}
    for t, p in pairs:
        confusion[t][p] += 1
    recall = {t: (confusion[t][t] / sum(confusion[t].values()) if sum(confusion[t].values()) else None)
              for t in classes}
    total = len(pairs)
    return {"recall": recall, "confusion": confusion, "faces": total,
            "accuracy": sum(confusion[c][c] for c in classes) / total if total else None}


def face_expression_pairs(truth, records: list[dict]) -> list[tuple[str, str]]:
    """(labelled, predicted dominant) for every matched face whose expression is labelled."""
    pairs = []
    for record in records:
        if record["kind"] == "face" and record["face"] is not None:
            label = truth.expressions.get((record["frame"], record["truth"]))
            expression = record["face"].get("expression")
            if label and expression:
                pairs.append((label, max((k for k in expression if k != "dominant"), key=expression.get)))
    return pairs


def score_clip(truth, answer: dict) -> dict:
    """Every figure of one clip."""
    records = frame_records(truth, answer)
    persons = person_report(records)
    ids = id_scores(records)
    answers = identity_answers(truth, answer, records)
    true_ids = sorted(i for i in {b.identity for b in truth.boxes if b.kind == "face"})
    detected = sum(1 for r in records if r["kind"] == "face" and r["person"] is not None)
    faces = sum(1 for r in records if r["kind"] == "face")

    def hits(key):
        values = [row[key] for row in answers.values() if row[key] is not None]
        return sum(values), len(values)

    return {"identities": len(true_ids), "persons": len(answer.get("persons", [])),
            "persons_on_labelled": len(persons),
            "phantoms": sum(1 for item in persons.values() if item["phantom"]),
            "idf1": ids["idf1"], "idtp": ids["idtp"], "idfp": ids["idfp"], "idfn": ids["idfn"],
            "id_switches": id_switches(records), "faces": faces, "faces_found": detected,
            "gender": hits("gender"), "age_band": hits("age_band"), "expression": hits("expression"),
            "per_identity": answers, "per_person": {str(k): v for k, v in persons.items()},
            "expression_pairs": face_expression_pairs(truth, records)}
