"""Generated mentions of a storm: five storylines told by many people, and a long tail.

Written as people describing what happened to them would write, not after the similarity
code's features: each storyline has several ways to say what happened, in Russian, Polish and
English (the Polish and English say the same event, not a word-for-word translation), and each
person adds their own details (their house, how long, who suffers, what they think), in their
own order, sometimes with typos, in lower case or without punctuation. The long tail is
complaints about everything else, each its own subject and place. Every text carries the name
of its storyline (or "tail-N"), so a benchmark can tell a right join from a wrong one.

Seeded: the same seed gives the same storm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

Pieces = dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Generated:
    storyline: str  # "water", "bus", "clinic", "school", "benefits" or "tail-N"
    language: str  # "ru", "pl" or "en"
    text: str


# Each storyline: per language, the ways to say the event ({n}: a number the person adds,
# chosen per text) and what people add around it.
STORYLINES: dict[str, dict[str, Pieces]] = {
    "water": {
        "ru": {
            "event": (
                "в Заречном с утра нет воды",
                "весь Заречный район без воды",
                "на Садовой прорвало трубу и теперь нет воды",
                "опять отключили воду в Заречном, никто ничего не объявлял",
                "воды нет ни холодной ни горячей, Заречный",
                "у нас в Заречном сухие краны с шести утра",
                "после аварии на Садовой вода так и не появилась",
            ),
            "detail": (
                "дом {n}",
                "живём на Садовой {n}",
                "уже {n} часов",
                "подъезд {n}",
                "ребёнку {n} месяцев, не могу даже помыть",
                "водоканал не берёт трубку",
                "бутилированную воду в магазине уже разобрали",
                "управляющая говорит ждать",
                "обещали дать воду к обеду",
                "по Садовой течёт целая река",
            ),
            "feeling": (
                "Когда дадут воду?",
                "Это издевательство.",
                "Сколько можно ждать?",
                "Помогите!",
                "Где подвоз воды?",
                "",
            ),
        },
        "pl": {
            "event": (
                "na Zarzeczu od rana nie ma wody",
                "całe osiedle Zarzecze bez wody",
                "na ulicy Sadowej pękła rura i nie ma wody",
                "znowu wyłączyli wodę na Zarzeczu, nikt nic nie ogłosił",
                "w kranach sucho od szóstej rano, Zarzecze",
            ),
            "detail": (
                "blok {n}",
                "mieszkam na Sadowej {n}",
                "już {n} godzin",
                "wodociągi nie odbierają telefonu",
                "w sklepie skończyła się woda butelkowana",
                "mam małe dziecko",
            ),
            "feeling": ("Kiedy będzie woda?", "Skandal!", "Pomóżcie!", ""),
        },
        "en": {
            "event": (
                "no water in Zarechny since this morning",
                "a pipe burst on Sadovaya street and the whole district has no water",
                "our taps have been dry since 6am in Zarechny",
                "water cut off again in Zarechny without any notice",
            ),
            "detail": (
                "building {n}",
                "we live at Sadovaya {n}",
                "it's been {n} hours",
                "the water company won't pick up",
                "the shops ran out of bottled water",
            ),
            "feeling": ("When will it be fixed?", "Unacceptable.", "Please help!", ""),
        },
    },
    "bus": {
        "ru": {
            "event": (
                "автобус 42 не ходит с утра",
                "42-й так и не пришёл",
                "маршрут 42 отменили без предупреждения",
                "на линии нет ни одного автобуса 42",
                "сорок второй автобус пропал, на остановке толпа",
                "водители 42 маршрута бастуют, автобусов нет",
                "42 автобус проезжает мимо переполненный",
            ),
            "detail": (
                "жду уже {n} минут",
                "на остановке у рынка",
                "опоздала на работу",
                "дети опоздали в школу",
                "пришлось брать такси за {n} рублей",
                "стоим на морозе",
                "диспетчер говорит ничего не знаем",
                "в приложении показывает что он едет",
            ),
            "feeling": (
                "Верните автобус!",
                "Позор перевозчику.",
                "Разберитесь!",
                "Когда это кончится?",
                "",
            ),
        },
        "pl": {
            "event": (
                "autobus 42 nie jeździ od rana",
                "linia 42 odwołana bez ostrzeżenia",
                "czterdziestka dwójka znowu nie przyjechała",
                "kierowcy linii 42 strajkują, nie ma autobusów",
            ),
            "detail": (
                "czekam już {n} minut",
                "na przystanku przy rynku",
                "spóźniłam się do pracy",
                "stoimy na mrozie",
            ),
            "feeling": ("Skandal!", "Kiedy to się skończy?", ""),
        },
        "en": {
            "event": (
                "bus 42 hasn't come all morning",
                "route 42 was cancelled without warning",
                "no number 42 buses at all today, drivers on strike",
            ),
            "detail": (
                "waiting {n} minutes already",
                "at the market stop",
                "late for work again",
                "freezing at the stop",
            ),
            "feeling": ("Sort it out!", "Ridiculous.", ""),
        },
    },
    "clinic": {
        "ru": {
            "event": (
                "в поликлинику №3 невозможно записаться к врачу",
                "запись в третьей поликлинике не работает",
                "поликлиника на Лесной: очередь в регистратуру на улице",
                "в поликлинике 3 сломалась электронная запись, талонов нет",
                "не могу записаться к терапевту в поликлинику на Лесной",
            ),
            "detail": (
                "звоню {n} раз, никто не отвечает",
                "с температурой {n} стою в очереди",
                "Госуслуги выдают ошибку",
                "пожилые люди стоят часами",
                "талоны только через {n} дней",
                "регистратура отправляет домой",
            ),
            "feeling": ("Наведите порядок!", "Как лечиться?", "Безобразие.", ""),
        },
        "pl": {
            "event": (
                "w przychodni nr 3 nie da się zapisać do lekarza",
                "przychodnia na Leśnej: kolejka do rejestracji na ulicy",
                "zapisy w przychodni 3 nie działają",
            ),
            "detail": (
                "dzwonię {n} raz, nikt nie odbiera",
                "starsi ludzie stoją godzinami",
                "system rejestracji pokazuje błąd",
            ),
            "feeling": ("Zróbcie coś!", "Skandal.", ""),
        },
        "en": {
            "event": (
                "can't book a doctor at Clinic No. 3",
                "the clinic on Lesnaya has a queue out onto the street",
                "online booking at clinic 3 is broken",
            ),
            "detail": (
                "called {n} times, nobody answers",
                "old people waiting for hours",
                "the booking site shows an error",
            ),
            "feeling": ("Fix it!", "Disgraceful.", ""),
        },
    },
    "school": {
        "ru": {
            "event": (
                "в школе №17 дети отравились в столовой",
                "после обеда в 17-й школе у детей рвота и температура",
                "массовое отравление в школе 17, скорые у входа",
                "в семнадцатой школе детей накормили испорченной едой",
            ),
            "detail": (
                "у сына {n}-й класс",
                "забрали {n} детей в больницу",
                "классный руководитель молчит",
                "столовую до сих пор не закрыли",
                "родители в шоке",
            ),
            "feeling": ("Кто ответит?", "Требуем проверку!", "Это преступление.", ""),
        },
        "pl": {
            "event": (
                "w szkole nr 17 dzieci zatruły się w stołówce",
                "masowe zatrucie w szkole 17 po obiedzie",
            ),
            "detail": ("syn chodzi do {n} klasy", "karetki pod szkołą", "dyrekcja milczy"),
            "feeling": ("Kto za to odpowie?", ""),
        },
        "en": {
            "event": (
                "kids got food poisoning at school 17 canteen",
                "children sick after lunch at School No. 17",
            ),
            "detail": ("my son is in grade {n}", "ambulances outside the school"),
            "feeling": ("Who is responsible?", ""),
        },
    },
    "benefits": {
        "ru": {
            "event": (
                "не пришли детские пособия за ноябрь",
                "пособие на ребёнка за ноябрь так и не перечислили",
                "соцзащита задерживает выплаты пособий на детей",
                "в ноябре не выплатили пособие многодетным",
            ),
            "detail": (
                "у меня {n} детей",
                "в соцзащите говорят ждать",
                "платить за садик нечем",
                "ждём уже {n} дней",
                "на горячей линии никто не отвечает",
            ),
            "feeling": ("На что жить?", "Верните наши деньги!", "Помогите разобраться.", ""),
        },
        "pl": {
            "event": (
                "nie przyszły zasiłki na dzieci za listopad",
                "świadczenie na dziecko za listopad nie zostało wypłacone",
            ),
            "detail": ("mam {n} dzieci", "czekamy już {n} dni"),
            "feeling": ("Z czego żyć?", ""),
        },
        "en": {
            "event": (
                "child benefits for November never arrived",
                "the November child allowance still hasn't been paid",
            ),
            "detail": ("I have {n} kids", "waiting {n} days now"),
            "feeling": ("How are we supposed to live?", ""),
        },
    },
}

OPENERS = {
    "ru": ("", "", "Здравствуйте!", "Добрый день.", "Люди,", "Администрация,", "Опять!"),
    "pl": ("", "", "Dzień dobry,", "Ludzie,"),
    "en": ("", "", "Hi,", "Hello,"),
}

# The long tail: what else people complain about, where, in their own words.
TAIL_PROBLEMS = {
    "ru": (
        "не горит фонарь",
        "огромная яма на дороге",
        "не вывозят мусор",
        "сломан лифт",
        "бродячие собаки бросаются на людей",
        "во дворе машины паркуются на газоне",
        "сосульки висят над входом",
        "соседи шумят по ночам",
        "течёт крыша",
        "детская площадка разломана",
        "не убран снег с тротуара",
        "светофор не работает",
        "в подъезде не убирают",
        "упало дерево на провода",
        "канализация течёт в подвал",
        "нет пандуса у аптеки",
        "в садике нет мест",
        "в школе холодно в классах",
        "не работает домофон",
        "автомобили гоняют по двору",
        "горит свалка за гаражами",
        "в парке сломаны скамейки",
        "в аптеке нет инсулина",
        "мусорные баки переполнены",
        "пенсию принесли не полностью",
        "нет освещения в подземном переходе",
        "маршрутка не останавливается по требованию",
        "провалился асфальт",
        "на остановке нет навеса",
        "из крана идёт ржавая вода",
        "крысы в подвале",
        "не убирают листья",
        "гаражи стоят на месте детской площадки",
        "в магазине продают просрочку",
        "ночью под окнами грохочет стройка",
    ),
    "pl": (
        "nie świeci latarnia",
        "ogromna dziura w jezdni",
        "nie wywożą śmieci",
        "zepsuta winda",
        "na placu zabaw połamane huśtawki",
    ),
    "en": (
        "the street light is out",
        "a huge pothole in the road",
        "rubbish hasn't been collected",
        "the lift is broken",
        "the playground is smashed",
    ),
}
TAIL_STREETS = (
    "Береговая", "Вишнёвая", "Гагарина", "Дачная", "Ермака", "Жукова", "Западная", "Ильинская",
    "Калинина", "Луговая", "Мира", "Некрасова", "Озёрная", "Пушкина", "Речная", "Светлая",
    "Тихая", "Угловая", "Фабричная", "Хвойная", "Цветочная", "Чапаева", "Школьная", "Щорса",
    "Юбилейная", "Ясная", "Кирова", "Советская", "Полевая", "Заводская", "Набережная",
    "Пионерская", "Строителей", "Молодёжная", "Садовый проезд", "Зелёная", "Весенняя",
    "Комсомольская", "Северная", "Южная", "Победы", "Восточная", "Солнечная", "Горная",
    "Кленовая", "Рябиновая", "Липовая", "Сосновая", "Дубовая", "Берёзовая", "Новая",
    "Первомайская", "Октябрьская", "Лермонтова", "Чехова", "Толстого", "Гоголя", "Тургенева",
    "Есенина", "Маяковского", "Островского", "Суворова", "Кутузова", "Нахимова",
)  # fmt: skip
TAIL_DETAIL = {
    "ru": ("уже {n} дней", "у дома {n}", "писали {n} раз", "никто не реагирует", "", ""),
    "pl": ("już {n} dni", "przy bloku {n}", "", ""),
    "en": ("for {n} days now", "next to number {n}", "", ""),
}
TAIL_WHERE = {"ru": "на улице {street}", "pl": "na ulicy {street}", "en": "on {street} street"}

# A few typos of hurried typing: a letter doubled, dropped or swapped with its neighbour.
_TYPO_KINDS = ("double", "drop", "swap")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(_TYPO_KINDS)
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def _hurried(text: str, rng: random.Random) -> str:
    """As typed on a phone in a hurry: typos, sometimes no capitals or punctuation."""
    words = text.split(" ")
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        i = rng.randrange(len(words))
        words[i] = _typo(words[i], rng)
    text = " ".join(words)
    roll = rng.random()
    if roll < 0.15:
        text = text.lower()
    elif roll < 0.25:
        text = text.rstrip(".!?").replace(",", "")
    elif roll < 0.35:
        text += rng.choice((" !!!", " 😡", " ((", "..."))
    return text


def _number(rng: random.Random) -> str:
    return str(rng.choice((rng.randint(2, 9), rng.randint(2, 9), rng.randint(10, 60))))


def _sentence(part: str) -> str:
    part = part.strip()
    return part[:1].upper() + part[1:] if part else part


def storyline_text(story: str, language: str, rng: random.Random) -> str:
    pieces = STORYLINES[story][language]
    event = rng.choice(pieces["event"])
    wanted = rng.choice((0, 1, 1, 2, 2, 3))
    details = rng.sample(pieces["detail"], k=min(wanted, len(pieces["detail"])))
    details = [d.format(n=_number(rng)) for d in details]
    feeling = rng.choice(pieces["feeling"])
    # Some say what happened first, some start with their own situation.
    if details and rng.random() < 0.35:
        body = _sentence(", ".join(details)) + ". " + _sentence(event) + "."
    else:
        body = _sentence(", ".join([event, *details])) + "."
    text = " ".join(p for p in (rng.choice(OPENERS[language]), body, feeling) if p)
    return _hurried(text, rng)


_LATIN = str.maketrans(
    {
        "а": "a", "б": "b", "в": "w", "г": "g", "д": "d", "е": "e", "ё": "io", "ж": "ż",
        "з": "z", "и": "i", "й": "j", "к": "k", "л": "ł", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "ch", "ц": "c",
        "ч": "cz", "ш": "sz", "щ": "szcz", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "ju",
        "я": "ja",
    }
)  # fmt: skip


def _street_in(language: str, street: str) -> str:
    """A street's name as a Pole or an English speaker writes it: in Latin letters."""
    if language == "ru":
        return street
    latin = street.lower().translate(_LATIN)
    if language == "en":
        for polish, english in (("szcz", "shch"), ("cz", "ch"), ("sz", "sh"), ("ż", "zh")):
            latin = latin.replace(polish, english)
        latin = latin.replace("ł", "l").replace("w", "v")
    return latin[:1].upper() + latin[1:]


def tail_text(language: str, problem: str, street: str, rng: random.Random) -> str:
    where = TAIL_WHERE[language].format(street=_street_in(language, street))
    detail = rng.choice(TAIL_DETAIL[language]).format(n=_number(rng))
    parts = [problem, where] if rng.random() < 0.6 else [where, problem]
    body = _sentence(" ".join(parts))
    if detail:
        body += ", " + detail
    text = " ".join(p for p in (rng.choice(OPENERS[language]), body + ".") if p)
    return _hurried(text, rng)


def _language(rng: random.Random) -> str:
    roll = rng.random()
    return "ru" if roll < 0.7 else "pl" if roll < 0.9 else "en"


def storm(sizes: dict[str, int], tail: int, seed: int = 19) -> list[Generated]:
    """The storylines at their sizes and `tail` unrelated complaints, shuffled."""
    rng = random.Random(seed)
    made: list[Generated] = []
    for story, count in sizes.items():
        for _ in range(count):
            language = _language(rng)
            made.append(Generated(story, language, storyline_text(story, language, rng)))
    subjects: list[tuple[str, str, str]] = [
        (language, problem, street)
        for language, problems in TAIL_PROBLEMS.items()
        for problem in problems
        for street in TAIL_STREETS
    ]
    rng.shuffle(subjects)
    if tail > len(subjects):
        raise ValueError(f"at most {len(subjects)} tail complaints, each its own subject")
    for n, (language, problem, street) in enumerate(subjects[:tail]):
        made.append(Generated(f"tail-{n}", language, tail_text(language, problem, street, rng)))
    rng.shuffle(made)
    return made
