"""Similar-mention features: what joins and what stays apart (a small set labelled here)."""

from __future__ import annotations

from bot.cases.similarity import bands, features, representative, similarity

THRESHOLD = 0.4  # the shipped playbook's grouping.similar_threshold

BUS_RU = "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час"
BUS_PL = "Autobus 42 znowu nie przyjechał, stoimy na przystanku na ulicy Mickiewicza już godzinę"
BUS_RU_AGAIN = "42-й автобус так и не пришел на Мицкевича, ждём больше часа"
BUS_43 = "Автобус 43 опять не пришёл, стоим на остановке на улице Мицкевича уже час"
PIPE_RU = "На улице Мицкевича прорвало трубу, вода течёт по тротуару"
PIT_RU = "На улице Мицкевича огромная яма на дороге, машины бьют колёса"
PIPE_PL = "Na ulicy Mickiewicza pękła rura, woda leje się po chodniku"


def joins(a: str, b: str) -> bool:
    return similarity(features(a), features(b)) >= THRESHOLD


def test_the_same_street_with_different_problems_stays_apart() -> None:
    for a, b in [(PIPE_RU, PIT_RU), (BUS_RU, PIPE_RU), (BUS_RU, PIT_RU), (PIT_RU, PIPE_PL)]:
        assert not joins(a, b), (a, b)
        assert similarity(features(a), features(b)) < 0.3


def test_a_different_route_number_is_a_different_complaint() -> None:
    assert similarity(features(BUS_RU), features(BUS_43)) == 0.0


def test_one_storyline_joins_in_other_words_and_in_polish() -> None:
    assert joins(BUS_RU, BUS_RU_AGAIN)
    # ru and pl meet on the route, the street, the shared roots (autobus, stoimy, ulica).
    assert joins(BUS_RU, BUS_PL)
    # The street and the water (woda) are enough of the shorter wording's few words.
    assert joins(PIPE_RU, PIPE_PL)


def test_people_adding_their_own_words_still_join() -> None:
    # The same report with what each person adds: the Jaccard index falls below 0.3.
    shorter = "Автобус 42 опять не пришёл, стоим на остановке уже час"
    longer = (
        "Доброе утро, администрация. Дети опоздали в школу: автобус 42 опять не пришёл, "
        "мы стоим на остановке у рынка уже час на морозе. Позор перевозчику, примите меры!"
    )
    assert joins(shorter, longer)


def test_near_duplicates_share_a_band_and_short_texts_have_none() -> None:
    assert set(bands(features(BUS_RU))) & set(bands(features(BUS_PL)))
    assert len(bands(features(BUS_RU))) == 12 + 1  # MinHash and the route number
    assert "#42" in bands(features(BUS_RU))
    assert len(bands(features(PIPE_RU))) == 12
    assert bands(features("Третий день нет отопления")) == []


def test_the_representative_is_the_most_central_text() -> None:
    found = [features(t) for t in (PIPE_RU, BUS_RU, BUS_RU_AGAIN, BUS_PL)]
    assert representative(found) == 1
