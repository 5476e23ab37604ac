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
    # Honest limit: a pl wording that shares only the street and the water does not join
    # (two features in common are a place or a phrase, not yet a story).
    assert not joins(PIPE_RU, PIPE_PL)


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


def test_a_different_street_is_a_different_complaint() -> None:
    # The same problem in two places: two complaints, though every other word is the same.
    light_mira = "Третью неделю не горит фонарь на улице Мира, вечером темно"
    light_gagarina = "Третью неделю не горит фонарь на улице Гагарина, вечером темно"
    assert similarity(features(light_mira), features(light_gagarina)) == 0.0
    assert features(light_mira).places == {"mira"}
    # English names the street before the word; Polish after, as Russian does.
    assert features("The lift is broken on Kalinina street").places == {"kali"}
    assert features("Zepsuta winda na ulicy Kalinina").places == {"kali"}


def test_numbers_keep_apart_only_what_they_count() -> None:
    # House 5 and house 7 are different houses; 40 minutes and house 5 are not a conflict.
    house_5 = "В доме 5 на Садовой нет горячей воды, управляющая молчит"
    house_7 = "В доме 7 на Садовой нет горячей воды, управляющая молчит"
    waited = "На Садовой нет горячей воды уже 40 часов, управляющая молчит"
    assert similarity(features(house_5), features(house_7)) == 0.0
    assert joins(house_5, waited)
    assert "dome" in features(house_5).number_roles  # "доме", cut to STEM letters


def test_greetings_say_nothing_about_the_complaint() -> None:
    lift = "Добрый день. Здравствуйте, люди! Не работает лифт на улице Мира"
    assert features(lift).words == features("Не работает лифт на улице Мира").words


def test_a_street_typed_in_a_hurry_is_still_a_street() -> None:
    pit_here = "Огромная яма на дороге на уилце Береговая, никто не реагирует"
    pit_there = "Огромная яма на дороге на улице Пионерская, писали 9 раз"
    assert features(pit_here).places == {"bere"}
    assert similarity(features(pit_here), features(pit_there)) == 0.0


def test_two_words_in_common_are_not_a_story() -> None:
    # The same street, different problems, short texts: the street and one word only.
    sewage = "На улице Горная канализация течёт в подвал"
    racing = "Автомобили гоняют по двору на улице Горная"
    assert not joins(sewage, racing)


def test_one_house_with_different_problems_stays_apart_the_same_problem_joins() -> None:
    # The place (street, house) and the time ("третий день") are shared by whatever happened
    # there: two texts must also share a word about what went wrong.
    heating = "На улице Ленина 5 третий день нет отопления в квартире"
    pothole = "На улице Ленина 5 третий день яма на дороге, никто не чинит"
    water = "Улица Ленина, дом 5: третий день нет горячей воды"
    rubbish = "Улица Ленина, дом 5: третий день не вывозят мусор, контейнеры переполнены"
    light = "Опять отключили свет в доме на Садовой 12"
    snow = "Опять не убрали снег во дворе дома на Садовой 12"
    for a, b in [(heating, pothole), (water, rubbish), (light, snow), (heating, rubbish)]:
        assert not joins(a, b), (a, b)
    assert joins(
        "Третий день нет воды в доме 15 на Лесной",
        "Дом 15 Лесная: воды нет уже три дня, когда дадут?",
    )
    assert features(water).topic == {"gorj", "vody"}  # not the street, the house, the day


def test_the_same_problem_in_two_named_places_is_two_complaints() -> None:
    # No "улица" before the name: a capitalised word inside a sentence names the place.
    sadovaya = "Прорыв трубы на Садовой, кипяток заливает подъезд! Вот фото"
    lenina = "Прорыв трубы на Ленина, кипяток заливает подвал! Акт во вложении"
    assert features(sadovaya).where == {"sado"}
    assert similarity(features(sadovaya), features(lenina)) == 0.0
    assert joins(sadovaya, "Кипяток заливает подъезд на Садовой, прорыв трубы, сделайте что-то")
