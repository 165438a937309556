"""End to end on real footage: the analyzer, by the path of POST /api/v2/analyze?timeline=true, on a shared clip,
scored against the truth made by looking (bench/real_footage/truth). Skips, saying why, without ../shared/clips."""

from __future__ import annotations

import pytest

from bench.real_footage import truth as truth_files
from bench.real_footage.clips import SHARED_CLIPS
from bench.real_footage.dump import answer_for
from bench.real_footage.metrics import score_clip

CLIP = SHARED_CLIPS / "walking_three.gif"


@pytest.fixture(scope="module")
def walking(request):
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is absent (the shared clips sit beside the checkout)")
    # The models are loaded only when the clip is there.
    analyzer = request.getfixturevalue("analyzer")
    return score_clip(truth_files.load(CLIP.name), answer_for(analyzer, CLIP))


def test_three_people_walking_are_three_persons_and_no_phantom(walking):
    # Targets of the real-footage work: one person per clearly visible person, no phantom, IDF1 >= 0.90.
    assert walking["identities"] == 3
    assert walking["persons"] == 3
    assert walking["phantoms"] == 0
    assert walking["idf1"] >= 0.90
    assert walking["id_switches"] == 0


def test_their_gender_and_age_band_are_right(walking):
    # Two women and a man, all adults, frontal and well lit: evident, so every one must be right.
    assert walking["gender"] == (3, 3)
    assert walking["age_band"] == (3, 3)
