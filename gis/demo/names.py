"""Names and identifiers of the demo city: people, roads, villages, ID cards, phones.

Everything is drawn from the generator passed in, vectorised where the row counts are large
(1.36 million residents at scale 1); string formatting is the one per-row step left.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

# Shandong's commonest surnames first; weights roughly follow their frequency there
SURNAMES = list("王李张刘于孙姜高崔杨赵陈徐周吴马郭宋胡朱林何韩曲綦纪万臧袁邵鲁修矫范尹")
SURNAME_P = np.array([10, 9, 8.5, 7, 4, 4, 3.5, 3, 3] + [2] * 11 + [1] * (len(SURNAMES) - 20), dtype=float)
SURNAME_P /= SURNAME_P.sum()
GIVEN_MALE = list("伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆建国志海东兵文博")
GIVEN_FEMALE = list("芳娜敏静丽艳娟霞秀英玲红梅燕琳洁萍婷雪慧颖倩晶琴兰凤云欣悦佳")

EW_ROADS = [
    "人民路", "胜利路", "扬州路", "常州路", "杭州路", "苏州路", "福州路", "广州路", "长江路", "黄河路",
    "淮河路", "珠江路", "福安路", "兴安路", "昌平路", "青岛路", "天津路", "北京路", "南京路", "上海路",
    "重庆路", "成都路", "西安路", "太原路", "济南路", "潍坊路", "烟台路", "威海路", "莱州路", "胶州路",
]
NS_ROADS = [
    "红旗路", "府前街", "东阁大街", "凤台路", "李园大街", "新华路", "和平路", "文化路", "建设路", "振华路",
    "兴平路", "宏图路", "同和路", "白沙河路", "现河路", "泽山路", "云山路", "温州路", "厦门路", "深圳路",
    "珠海路", "大连路", "宁波路", "青年路", "育英路", "香港路", "澳门路", "海口路", "三亚路", "昆明路",
]
SEAT_ROADS = ["府前街", "中心大街", "兴业路", "和平路", "振兴路", "建设路", "文化路", "商业街", "新华路", "育才路"]

VILLAGE_PREFIX = ["", "东", "西", "南", "北", "前", "后", "大", "小", "上", "下"]
VILLAGE_SUFFIX = ["家庄", "家村", "家疃", "家屯", "格庄", "家洼", "家埠", "官庄", "家寨", "家营", "家沟", "家岭"]

PHONE_PREFIXES = np.array(
    [130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 156, 157, 158, 159, 166, 176, 177, 178,
     180, 181, 182, 183, 185, 186, 187, 188, 189, 191, 198, 199]
)
AREA_CODE = "370283"  # 平度市
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = "10X98765432"
CN_DIGITS = "零一二三四五六七八九十"


def road_name(roads: list[str], index: int) -> str:
    """Lattice line `index` (any integer) of the town's roads; the far lines get 二路 names."""
    k = index + len(roads) // 2
    base = roads[k % len(roads)]
    return base if 0 <= k < len(roads) else base.removesuffix("路").removesuffix("街").removesuffix("大") + "二路"


def village_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [p + s + x for s in SURNAMES for x in VILLAGE_SUFFIX for p in VILLAGE_PREFIX]
    pick = rng.choice(len(combos), n, replace=n > len(combos))
    return [combos[k] if combos[k].endswith("村") else combos[k] + "村" for k in pick.tolist()]


def chinese_number(n: int) -> str:
    if n <= 10:
        return CN_DIGITS[n]
    if n < 20:
        return "十" + CN_DIGITS[n - 10]
    tens, ones = divmod(n, 10)
    return CN_DIGITS[tens] + "十" + (CN_DIGITS[ones] if ones else "")


def person_names(rng: np.random.Generator, surname_idx: np.ndarray, male: np.ndarray) -> list[str]:
    n = len(surname_idx)
    male_given = np.array(GIVEN_MALE, dtype=object)
    female_given = np.array(GIVEN_FEMALE, dtype=object)
    def given() -> np.ndarray:
        return np.where(
            male, male_given[rng.integers(0, len(male_given), n)], female_given[rng.integers(0, len(female_given), n)]
        )

    first, second = given(), given()
    second = np.where(rng.random(n) < 0.7, second, "")
    surnames = np.array(SURNAMES, dtype=object)[surname_idx]
    return (surnames + first + second).tolist()


def random_surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(len(SURNAMES), n, p=SURNAME_P)


def id_check_digit(first17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters for rows of 17 digits (GB 11643)."""
    return np.array(list(ID_CHECK))[(first17 * ID_WEIGHTS).sum(axis=1) % 11]


def national_ids(birth: np.ndarray, seq: np.ndarray) -> list[str]:
    """18-character resident ID numbers: 平度 area code, birth date, sequence (odd = male), check."""
    days = birth.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    mdays = (days - days.astype("datetime64[M]")).astype(int) + 1
    area = np.array([int(c) for c in AREA_CODE])
    digits = np.empty((len(days), 17), dtype=np.int64)
    digits[:, :6] = area
    for k, (value, width) in enumerate(((years, 4), (months, 2), (mdays, 2), (seq, 3))):
        start = 6 + sum((4, 2, 2, 3)[:k])
        for p in range(width):
            digits[:, start + p] = value // 10 ** (width - 1 - p) % 10
    check = id_check_digit(digits)
    return [
        f"{AREA_CODE}{y:04d}{m:02d}{d:02d}{s:03d}{c}"
        for y, m, d, s, c in zip(years.tolist(), months.tolist(), mdays.tolist(), seq.tolist(), check.tolist())
    ]


def phones(rng: np.random.Generator, n: int) -> list[str]:
    prefix = PHONE_PREFIXES[rng.integers(0, len(PHONE_PREFIXES), n)]
    rest = rng.integers(0, 100_000_000, n)
    return [f"{p}{r:08d}" for p, r in zip(prefix.tolist(), rest.tolist())]


def landlines(rng: np.random.Generator, n: int) -> list[str]:
    rest = rng.integers(0, 10_000_000, n)
    return [f"0532-8{r:07d}" for r in rest.tolist()]


def utc_datetimes(rng: np.random.Generator, n: int, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    span = int((end - start).total_seconds())
    secs = rng.integers(0, span, n)
    return [start + dt.timedelta(seconds=s) for s in secs.tolist()]


def dates_in_years(rng: np.random.Generator, years: np.ndarray, jan1_share: float = 0.3) -> list[dt.date]:
    """A completion date per year; a share is 1 January, the convention when only the year is known."""
    n = len(years)
    offset = np.where(rng.random(n) < jan1_share, 0, rng.integers(0, 365, n))
    base = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    return (base + offset).astype(object).tolist()
