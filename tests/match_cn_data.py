"""A labelled Chinese evaluation set for the duplicate matcher (issue 19, item 6).

`generate(seed, n_pairs, n_background, crowded)` builds customer records as the database
stores them — raw values run through `customers.clean_customer_data` (which computes
`text_keys` for a whole record), exactly as a save does; no app context or database is
needed — and labels pairs of them:

- duplicates: the same customer entered twice, each pair labelled by how the second entry
  differs (DUPLICATE_KINDS);
- near-misses: two different customers that look alike and must not be linked
  (NEAR_MISS_KINDS);
- background: unrelated customers, so blocks hold realistic company of strangers;
- `crowded`: that many more companies whose core names all start with CROWD_PREFIX (one
  name block), with a few one-character variants among them labelled "crowded_typo" — the
  block the equivalence test of entry check and scan runs on.

Everything is drawn from one seeded random.Random: the same arguments give the same records,
ids and labels. Company cores are unique across the set except where a pair is labelled, so
an unlabelled link is a false link. Person names are not unique (namesakes are common in
China, and the matcher must live with them).

Second entries differ the way re-entries do: the address restyled (province and city words
added or dropped, full-width digits, 号楼/栋/幢/座, 室 dropped), phone numbers written
another way, fields left empty. Homophones (同音字) come from pypinyin over the GB2312
level-1 characters (the 3,755 common ones).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

from app.services.customers import clean_customer_data
from app.services.normalize import (InvalidValue, normalize_mobile, normalize_phone,
                                    split_company_name)

DUPLICATE_KINDS = (
    "company_typo",           # one character of the core replaced (not a homophone)
    "company_homophone",      # one character replaced by another with the same pinyin
    "company_region_form",    # with / without region prefix, (城市) in brackets, legal form
    "company_no_contact",     # neither entry has a phone, mobile or e-mail
    "person_name_typo",       # one given-name character replaced; same address and birthday
    "person_address_variant",  # same name; the address written differently
    "person_no_contact",      # same name, no phone, mobile or e-mail on either entry
    "person_birthday_swap",   # birthday day and month swapped
    "person_birth_year",      # birth year off by one
    "person_mobile_format",   # same mobile written another way; moved or no address
    "crowded_typo",           # one-character variant inside the crowded block
)
NEAR_MISS_KINDS = (
    "company_branch",         # X有限公司上海分公司 / X有限公司深圳分公司 (or 浦东 / 徐汇 of one city)
    "company_sibling",        # 华为技术 / 华为终端: same trade name, another business, same city
                              # (a quarter in the same building)
    "company_other_city",     # the same name in another city (region, city, address)
    "company_same_building",  # two companies in one office building
    "person_namesake",        # same name, other birthday and address
    "person_family",          # same surname, address and landline; other names, birthdays
)
CROWD_PREFIX = "华信"

# --- vocabulary -------------------------------------------------------------------------------
# (province, city, area code, landline digits, districts)
CITIES = (
    ("北京市", "北京市", "010", 8, ("朝阳区", "海淀区", "东城区", "西城区", "丰台区")),
    ("上海市", "上海市", "021", 8, ("浦东新区", "徐汇区", "静安区", "闵行区", "长宁区")),
    ("天津市", "天津市", "022", 8, ("和平区", "南开区", "河西区")),
    ("重庆市", "重庆市", "023", 8, ("渝中区", "江北区", "南岸区")),
    ("广东省", "广州市", "020", 8, ("天河区", "越秀区", "海珠区", "番禺区")),
    ("广东省", "深圳市", "0755", 8, ("南山区", "福田区", "罗湖区", "宝安区", "龙岗区")),
    ("广东省", "东莞市", "0769", 8, ("南城区", "东城区", "莞城区")),
    ("广东省", "佛山市", "0757", 8, ("禅城区", "南海区", "顺德区")),
    ("浙江省", "杭州市", "0571", 8, ("西湖区", "滨江区", "拱墅区", "余杭区")),
    ("浙江省", "宁波市", "0574", 8, ("鄞州区", "海曙区", "江北区")),
    ("江苏省", "南京市", "025", 8, ("玄武区", "鼓楼区", "建邺区", "江宁区")),
    ("江苏省", "苏州市", "0512", 8, ("姑苏区", "吴中区", "工业园区")),
    ("四川省", "成都市", "028", 8, ("武侯区", "锦江区", "青羊区", "高新区")),
    ("湖北省", "武汉市", "027", 8, ("江汉区", "武昌区", "洪山区")),
    ("陕西省", "西安市", "029", 8, ("雁塔区", "碑林区", "未央区")),
    ("湖南省", "长沙市", "0731", 8, ("岳麓区", "芙蓉区", "天心区")),
    ("河南省", "郑州市", "0371", 8, ("金水区", "中原区", "二七区")),
    ("山东省", "济南市", "0531", 8, ("历下区", "市中区", "槐荫区")),
    ("山东省", "青岛市", "0532", 8, ("市南区", "市北区", "崂山区")),
    ("福建省", "厦门市", "0592", 7, ("思明区", "湖里区", "集美区")),
    ("福建省", "福州市", "0591", 8, ("鼓楼区", "台江区", "仓山区")),
    ("安徽省", "合肥市", "0551", 8, ("蜀山区", "庐阳区", "包河区")),
    ("辽宁省", "沈阳市", "024", 8, ("和平区", "沈河区", "皇姑区")),
    ("辽宁省", "大连市", "0411", 8, ("中山区", "西岗区", "沙河口区")),
    ("云南省", "昆明市", "0871", 8, ("五华区", "盘龙区", "官渡区")),
    ("江苏省", "无锡市", "0510", 8, ("梁溪区", "滨湖区", "新吴区")),
)
# Characters trade names (字号) are made of.
TRADE_CHARS = (
    "英荣润华信达鑫源泰康瑞恒通宏盛博德安兴隆丰远金宇天海联合创新汇诚美佳明辉亿帆腾飞"
    "嘉禾昊晖睿智凯锦绣祥和永春光星月晨阳东方正元中科思维卓越精益铭志豪杰晟鼎乐欣"
    "立邦智峰云海川江河山林森磊浩宁静雅致尚品优途环宇长城天成万通百富千禧顺捷迅驰"
)
# Core industry word -> the industry field
INDUSTRIES = {
    "网络科技": "互联网", "信息技术": "信息技术", "商贸": "批发零售", "建筑工程": "建筑",
    "餐饮管理": "餐饮", "文化传媒": "文化传媒", "物流": "物流", "医疗器械": "医疗",
    "电子科技": "电子", "机械设备": "制造", "环保科技": "环保", "教育咨询": "教育",
    "食品": "食品", "服装": "纺织服装", "家具": "家居", "新能源科技": "能源",
    "生物科技": "生物医药", "软件": "软件", "广告": "广告", "实业": "综合",
    "终端": "电子", "技术": "信息技术", "投资管理": "金融", "贸易": "批发零售",
}
LEGAL_FORMS = ("有限公司", "有限公司", "有限公司", "有限责任公司", "股份有限公司")
ROAD_CHARS = "建国人民解放中山长江黄河和平文化科技创业学府滨江望京金融世纪东风胜利光明新华"
ROAD_KINDS = ("路", "路", "街", "大道")
ESTATES = ("花园", "小区", "家园", "新村", "苑", "公寓")
TOWERS = ("大厦", "中心", "广场", "科技园")
GIVEN_CHARS = (
    "伟强磊洋勇军杰涛超明刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢佳阳亮成建峰兵丽雨"
    "芳娜敏静秀英红梅霞燕玲桂兰萍婷雪琳晶颖慧莉娟倩洁丹欣怡悦思雅子文博睿轩泽晨瑶璐"
)
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150",
                   "151", "152", "155", "156", "158", "159", "176", "177", "180", "181",
                   "186", "187", "188", "189", "199")
MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "139.com", "outlook.com")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@lru_cache(maxsize=1)
def common_chars() -> tuple[str, ...]:
    """The GB2312 level-1 characters (rows 16–55): the 3,755 in common use."""
    out = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                out.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return tuple(out)


@lru_cache(maxsize=1)
def homophones() -> dict[str, tuple[str, ...]]:
    """{character: other common characters with the same pinyin and tone} (pypinyin's
    most frequent reading); characters without one are left out."""
    from pypinyin import Style, pinyin

    groups: dict[str, list[str]] = {}
    reading = {}
    for ch in common_chars():
        key = pinyin(ch, style=Style.TONE3, heteronym=False)[0][0]
        reading[ch] = key
        groups.setdefault(key, []).append(ch)
    return {ch: tuple(c for c in groups[key] if c != ch) for ch, key in reading.items()
            if len(groups[key]) > 1}


@lru_cache(maxsize=1)
def _toneless() -> dict[str, str]:
    from pypinyin import lazy_pinyin

    return {ch: lazy_pinyin(ch)[0] for ch in common_chars()}


def _core_of(name: str) -> str:
    return split_company_name(name).core


def _valid(normalise, number: str) -> bool:
    """Whether a save would accept the number (not every prefix and length is allotted)."""
    try:
        return bool(normalise(number))
    except InvalidValue:
        return False


# --- the set ----------------------------------------------------------------------------------
@dataclass
class Dataset:
    records: list[dict]
    duplicates: list[tuple[int, int, str]] = field(default_factory=list)
    near_misses: list[tuple[int, int, str]] = field(default_factory=list)

    def by_id(self) -> dict[int, dict]:
        return {r["id"]: r for r in self.records}

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, kind in self.duplicates + self.near_misses:
            out[kind] = out.get(kind, 0) + 1
        return out


@dataclass
class _Address:
    """An address as parts, rendered in several styles (the same place written again)."""
    city: tuple
    district: str
    street: str           # 科发路12号 / 阳光花园
    building: Optional[int] = None
    floor: Optional[int] = None
    room: Optional[int] = None
    tower: Optional[str] = None   # 鑫源大厦

    def render(self, rng: random.Random, style: Optional[dict] = None) -> str:
        s = style or _address_style(rng)
        province, city = self.city[0], self.city[1]
        head = ""
        if s["province"] and province != city:
            head += province if s["markers"] else province.rstrip("省")
        if s["city"]:
            head += city if s["markers"] else city.rstrip("市")
        text = head + self.district + self.street
        if self.tower:
            text += self.tower
        if self.building is not None:
            text += f"{self.building}{s['building_word']}"
        if self.floor is not None:
            text += f"{self.floor}层" if s["floor"] else ""
        if self.room is not None:
            text += f"{self.room}" + ("室" if s["room_word"] else "")
        return text.translate(FULL_WIDTH) if s["full_width"] else text


def _address_style(rng: random.Random) -> dict:
    return {"province": rng.random() < 0.4, "city": rng.random() < 0.8,
            "markers": rng.random() < 0.7, "full_width": rng.random() < 0.15,
            "building_word": rng.choice(("号楼", "号楼", "栋", "幢", "座")),
            "floor": rng.random() < 0.8, "room_word": rng.random() < 0.8}


def _other_style(rng: random.Random, address: _Address, first: str) -> str:
    """The same address written differently from `first` (retries until the text differs)."""
    for _ in range(20):
        text = address.render(rng)
        if text != first:
            return text
    return address.render(rng, dict(_address_style(rng), full_width=True))


class _Builder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.raw: list[dict] = []          # raw values, in creation order
        self.pairs: list[tuple[int, int, str, bool]] = []  # (index, index, kind, duplicate)
        self.cores: set[str] = set()
        self.numbers: set[str] = set()
        self.mailboxes: set[str] = set()
        self.surnames = self._surnames()

    # -- small pieces
    def _surnames(self) -> tuple[list[str], list[float]]:
        from faker.providers.person.zh_CN import Provider

        names = [n for n in Provider.last_names if len(n) == 1]
        return names, [Provider.last_names[n] for n in names]

    def city(self):
        return self.rng.choice(CITIES)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def mobile(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + self.digits(8)
            if number not in self.numbers and _valid(normalize_mobile, number):
                self.numbers.add(number)
                return number

    def landline(self, city) -> str:
        while True:
            local = self.rng.choice("2345678") + self.digits(city[3] - 1)
            number = f"{city[2]}-{local}"
            if number not in self.numbers and _valid(normalize_phone, number):
                self.numbers.add(number)
                return number

    def restyle_mobile(self, number: str) -> str:
        """The same mobile written another way."""
        digits = number
        return self.rng.choice((
            f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", f"+86 {digits}",
            f"{digits[:3]} {digits[3:7]} {digits[7:]}", f"+86-{digits[:3]}-{digits[3:]}",
            digits.translate(FULL_WIDTH), f"(+86){digits}"))

    def restyle_landline(self, number: str) -> str:
        code, local = number.split("-")
        return self.rng.choice((f"({code}){local}", f"{code} {local}", f"{code}{local}",
                                f"+86 {code[1:]} {local}", f"{code}-{local}"))

    def trade_name(self, prefix: str = "") -> str:
        n = self.rng.choice((2, 2, 3)) if not prefix else self.rng.choice((1, 2))
        return prefix + "".join(self.rng.choice(TRADE_CHARS) for _ in range(n))

    def core(self, prefix: str = "", industry: Optional[str] = None) -> tuple[str, str]:
        """A core name (trade name + industry word) no other record has; (core, industry)."""
        while True:
            word = industry or self.rng.choice(list(INDUSTRIES))
            core = self.trade_name(prefix) + word
            # A trade name starting with a place (河源帆…) loses it to the region: the
            # stored core would not be the one labelled.
            if core not in self.cores and _core_of(core + "有限公司") == core:
                self.cores.add(core)
                return core, word

    def company_address(self, city) -> _Address:
        rng = self.rng
        road = "".join(rng.sample(ROAD_CHARS, 2)) + rng.choice(ROAD_KINDS)
        tower = rng.choice(TRADE_CHARS) + rng.choice(TRADE_CHARS) + rng.choice(TOWERS) \
            if rng.random() < 0.5 else None
        floor = rng.randint(2, 30)
        return _Address(city, rng.choice(city[4]), f"{road}{rng.randint(1, 999)}号",
                        building=rng.randint(1, 12) if not tower and rng.random() < 0.5
                        else None, floor=floor, room=floor * 100 + rng.randint(1, 20),
                        tower=tower)

    def home_address(self, city) -> _Address:
        rng = self.rng
        if rng.random() < 0.6:
            estate = rng.choice(TRADE_CHARS) + rng.choice(TRADE_CHARS) + rng.choice(ESTATES)
            return _Address(city, rng.choice(city[4]), estate, building=rng.randint(1, 40),
                            room=rng.randint(1, 33) * 100 + rng.randint(1, 4))
        road = "".join(rng.sample(ROAD_CHARS, 2)) + rng.choice(ROAD_KINDS)
        return _Address(city, rng.choice(city[4]), f"{road}{rng.randint(1, 999)}号",
                        room=rng.randint(1, 20) * 100 + rng.randint(1, 6))

    def given_name(self) -> str:
        n = 1 if self.rng.random() < 0.3 else 2
        return "".join(self.rng.choice(GIVEN_CHARS) for _ in range(n))

    def surname(self) -> str:
        names, weights = self.surnames
        return self.rng.choices(names, weights)[0]

    def birthday(self, lo: int = 1950, hi: int = 2003) -> tuple[int, int, int]:
        return self.rng.randint(lo, hi), self.rng.randint(1, 12), self.rng.randint(1, 28)

    def email_of(self, name: str) -> str:
        from pypinyin import lazy_pinyin

        local = "".join(lazy_pinyin(name)) + self.digits(self.rng.choice((0, 2, 4)))
        return self.mailbox(local, self.rng.choice(MAIL_DOMAINS))

    def mailbox(self, local: str, domain: str) -> str:
        """local@domain, or with digits added if another customer has it (one mailbox, one
        customer: a shared one would be a duplicate by the e-mail rule)."""
        address = f"{local}@{domain}"
        while address in self.mailboxes:
            address = f"{local}{self.digits(3)}@{domain}"
        self.mailboxes.add(address)
        return address

    # -- records
    def add(self, raw: dict) -> int:
        self.raw.append(raw)
        return len(self.raw) - 1

    def company(self, core: Optional[str] = None, city=None, *, prefix: str = "",
                industry: Optional[str] = None, name: Optional[str] = None,
                contacts: bool = True) -> tuple[int, dict]:
        rng = self.rng
        if core is None:
            core, industry = self.core(prefix, industry)
        city = city or self.city()
        word = industry or next((w for w in INDUSTRIES if core.endswith(w)), None)
        address = self.company_address(city)
        raw = {"customer_type": "company", "city": city[1], "province": city[0],
               "name": name or self.company_name(core, city),
               "industry": INDUSTRIES.get(word) if rng.random() < 0.7 else None,
               "_address": address, "address": address.render(rng)}
        if contacts:
            if rng.random() < 0.8:
                raw["phone"] = self.landline(city)
            if rng.random() < 0.3:
                raw["mobile"] = self.mobile()
            if rng.random() < 0.4:
                raw["email"] = self.mailbox(rng.choice(("info", "sales", "hr", "service")),
                                            self.domain(core))
        return self.add(raw), raw

    def domain(self, core: str) -> str:
        toneless = _toneless()
        return "".join(toneless.get(ch, "x") for ch in core[:4]) + \
            self.rng.choice((".com", ".com.cn", ".cn"))

    def company_name(self, core: str, city, form: Optional[str] = None) -> str:
        rng = self.rng
        form = form or rng.choice(LEGAL_FORMS)
        short_city = city[1].rstrip("市")
        style = rng.random()
        if style < 0.35:
            return f"{rng.choice((city[1], short_city))}{core}{form}"
        if style < 0.5:
            return f"{core}（{short_city}）{form}"
        return f"{core}{form}"

    def person(self, name: Optional[str] = None, city=None, *, contacts: bool = True,
               birthday: bool = None) -> tuple[int, dict]:
        rng = self.rng
        city = city or self.city()
        name = name or self.surname() + self.given_name()
        address = self.home_address(city)
        raw = {"customer_type": "person", "name": name, "city": city[1],
               "province": city[0] if rng.random() < 0.5 else None,
               "_address": address, "address": address.render(rng)}
        if birthday or (birthday is None and rng.random() < 0.85):
            raw["_birthday"] = self.birthday()
        if contacts:
            if rng.random() < 0.85:
                raw["mobile"] = self.mobile()
            if rng.random() < 0.3:
                raw["email"] = self.email_of(name)
            if rng.random() < 0.15:
                raw["phone"] = self.landline(city)
        return self.add(raw), raw

    def copy(self, raw: dict, *, keep_address: float = 0.8, keep_phone: float = 0.4,
             keep_mobile: float = 0.4, keep_email: float = 0.25) -> dict:
        """The same customer entered again: fields restyled or left empty, but never all of
    address, phone, mobile and e-mail."""
        rng = self.rng
        out = {k: v for k, v in raw.items() if k in ("customer_type", "name", "city",
                                                     "province", "industry", "_address",
                                                     "_birthday")}
        if rng.random() < 0.15:
            out["city"] = None
        if rng.random() < 0.5:
            out["province"] = None
        if rng.random() < 0.3:
            out["industry"] = None
        if rng.random() < keep_address:
            out["address"] = raw["_address"].render(rng)
        else:
            out.pop("_address")
        if raw.get("phone") and rng.random() < keep_phone:
            out["phone"] = self.restyle_landline(raw["phone"])
        if raw.get("mobile") and rng.random() < keep_mobile:
            out["mobile"] = self.restyle_mobile(raw["mobile"])
        if raw.get("email") and rng.random() < keep_email:
            out["email"] = raw["email"].upper() if rng.random() < 0.3 else raw["email"]
        if not any(out.get(f) for f in ("address", "phone", "mobile", "email")):
            # Something besides the name ties a re-entry to the first: with a name alone
            # (one character off) nobody, a reviewer included, could tell.
            out["_address"] = raw["_address"]
            out["address"] = raw["_address"].render(rng)
        return out

    def pair(self, a: int, b: int, kind: str, duplicate: bool) -> None:
        self.pairs.append((a, b, kind, duplicate))

    # -- replacing one character
    def variant_core(self, core: str, positions: range, homophone: bool) -> Optional[str]:
        """The core with one character replaced, unique and stored as written; None if
        no such character is found."""
        for _ in range(20):
            new = self.replaced(core, positions, homophone)
            if new is None:
                return None
            if new not in self.cores and _core_of(new + "有限公司") == new:
                self.cores.add(new)
                return new
        return None

    def replaced(self, text: str, positions: range, homophone: bool) -> Optional[str]:
        rng = self.rng
        options = []
        for i in positions:
            ch = text[i]
            if homophone:
                options += [(i, c) for c in homophones().get(ch, ())]
            else:
                sound = _toneless().get(ch)
                options += [(i, c) for c in TRADE_CHARS + GIVEN_CHARS
                            if c != ch and _toneless().get(c) != sound]
        if not options:
            return None
        i, c = rng.choice(options)
        return text[:i] + c + text[i + 1:]


# --- the kinds ----------------------------------------------------------------------------------
def _company_variant(b: _Builder, kind: str) -> None:
    rng = b.rng
    core, word = b.core()
    city = b.city()
    a, raw = b.company(core, city, industry=word)
    copy = b.copy(raw)
    trade = len(core) - len(word)
    if kind in ("company_typo", "company_homophone"):
        # Mostly in the trade name (where typos matter), sometimes in the industry word.
        positions = range(trade) if rng.random() < 0.8 else range(trade, len(core))
        new_core = b.variant_core(core, positions, kind == "company_homophone") or \
            b.variant_core(core, range(len(core)), kind == "company_homophone")
        copy["name"] = b.company_name(new_core, city)
    elif kind == "company_region_form":
        short = city[1].rstrip("市")
        forms = [f"{city[1]}{core}有限公司", f"{short}{core}有限责任公司", f"{core}有限公司",
                 f"{core}（{short}）有限公司", f"{core}股份有限公司", f"{core}公司"]
        copy["name"] = rng.choice([f for f in forms if f != raw["name"]])
    elif kind == "company_no_contact":
        for r in (raw, copy):
            for f in ("phone", "mobile", "email"):
                r.pop(f, None)
        copy["address"] = raw["_address"].render(rng)
        if rng.random() < 0.5:
            copy["name"] = b.company_name(core, city)
    b.pair(a, b.add(copy), kind, True)


def _person_variant(b: _Builder, kind: str) -> None:
    rng = b.rng
    name = None
    if kind == "person_name_typo":  # a typo in a two-character name is another name
        name = b.surname() + "".join(rng.choice(GIVEN_CHARS) for _ in range(2))
    a, raw = b.person(name, birthday=True, contacts=kind != "person_no_contact")
    year, month, day = raw["_birthday"]
    copy = b.copy(raw, keep_address=1.0, keep_mobile=0.3, keep_email=0.15, keep_phone=0.3)
    if kind == "person_name_typo":
        name = raw["name"]
        copy["name"] = b.replaced(name, range(1, len(name)), rng.random() < 0.5) or \
            b.replaced(name, range(1, len(name)), False)
    elif kind == "person_address_variant":
        copy["address"] = _other_style(rng, raw["_address"], raw["address"])
        if rng.random() < 0.5:
            copy.pop("_birthday")
    elif kind == "person_no_contact":
        copy["address"] = _other_style(rng, raw["_address"], raw["address"])
        if rng.random() < 0.3:
            copy.pop("_birthday")
    elif kind == "person_birthday_swap":
        if day > 12 or day == month:
            day = rng.choice([d for d in range(1, 13) if d != month])
            raw["_birthday"] = (year, month, day)
        copy["_birthday"] = (year, day, month)
    elif kind == "person_birth_year":
        copy["_birthday"] = (year + rng.choice((-1, 1)), month, day)
    elif kind == "person_mobile_format":
        raw.setdefault("mobile", b.mobile())
        copy["mobile"] = b.restyle_mobile(raw["mobile"])
        copy.pop("_birthday")
        if rng.random() < 0.5:
            copy.pop("address"), copy.pop("_address")
        else:  # moved house
            moved = b.home_address(b.city() if rng.random() < 0.3 else raw["_address"].city)
            copy["address"] = moved.render(rng)
            copy["city"] = moved.city[1]
    b.pair(a, b.add(copy), kind, True)


def _near_miss(b: _Builder, kind: str) -> None:
    rng = b.rng
    if kind in ("company_branch", "company_other_city"):
        core, word = b.core()
        c1, c2 = rng.sample(CITIES, 2)
        if kind == "company_branch":
            form = rng.choice(("有限公司", "股份有限公司"))
            names = [f"{core}{form}{c.rstrip('市')}分公司" for c in (c1[1], c2[1])]
        else:
            names = [b.company_name(core, c1), None]
            while not names[1] or names[1] == names[0]:
                names[1] = f"{rng.choice((c2[1], c2[1].rstrip('市')))}{core}有限公司" \
                    if rng.random() < 0.6 else f"{core}（{c2[1].rstrip('市')}）有限公司"
        same_city = kind == "company_branch" and rng.random() < 0.3
        if same_city:  # branches of one city: 上海浦东分公司 / 上海徐汇分公司
            c2 = c1
        a, raw = b.company(core, c1, industry=word, name=names[0])
        c, raw2 = b.company(core, c2, industry=word, name=names[1])
        if same_city:
            d1, d2 = rng.sample(c1[4], 2)
            for r, district in ((raw, d1), (raw2, d2)):
                r["_address"].district = district
                r["address"] = r["_address"].render(rng)
                r["name"] = f"{core}{form}{c1[1].rstrip('市')}{district}分公司"
    elif kind == "company_sibling":
        core, word = b.core()
        trade = core[:len(core) - len(word)]
        while True:
            other = rng.choice([w for w in INDUSTRIES if w != word])
            if trade + other not in b.cores:
                break
        b.cores.add(trade + other)
        city = b.city()
        a, raw = b.company(core, city, industry=word)
        c, raw2 = b.company(trade + other, city, industry=other)
        if rng.random() < 0.25:  # one group's building, another floor
            there = raw["_address"]
            floor = rng.choice([f for f in range(2, 31) if f != there.floor])
            raw2["_address"] = _Address(city, there.district, there.street, there.building,
                                        floor, floor * 100 + rng.randint(1, 20), there.tower)
            raw2["address"] = raw2["_address"].render(rng)
        elif rng.random() < 0.5:  # same road, another number
            street = raw["_address"].street.rsplit("号", 1)[0].rstrip("0123456789")
            raw2["_address"].street = f"{street}{rng.randint(1, 999)}号"
            raw2["address"] = raw2["_address"].render(rng)
        if raw.get("email") and rng.random() < 0.5:
            # One group's mail server.
            raw2["email"] = b.mailbox("hr", raw["email"].split("@")[1])
    elif kind == "company_same_building":
        city = b.city()
        a, raw = b.company(city=city)
        c, raw2 = b.company(city=city)
        there = raw["_address"]
        floor = rng.choice([f for f in range(2, 31) if f != there.floor])
        raw2["_address"] = _Address(city, there.district, there.street, there.building,
                                    floor, floor * 100 + rng.randint(1, 20), there.tower)
        raw2["address"] = raw2["_address"].render(rng)
    elif kind == "person_namesake":
        a, raw = b.person(birthday=rng.random() < 0.9)
        city = raw["_address"].city if rng.random() < 0.5 else b.city()
        c, raw2 = b.person(raw["name"], city)
        while raw2.get("_birthday") and raw.get("_birthday") and \
                raw2["_birthday"][1:] == raw["_birthday"][1:]:
            raw2["_birthday"] = b.birthday()
    elif kind == "person_family":
        a, raw = b.person(birthday=True)
        surname = raw["name"][0]
        given = raw["name"][1:]
        if rng.random() < 0.3 and len(given) == 2:  # siblings sharing a generation character
            name = surname + given[0] + rng.choice([ch for ch in GIVEN_CHARS if ch != given[1]])
        else:
            name = raw["name"]
            while name == raw["name"]:
                name = surname + b.given_name()
        c, raw2 = b.person(name, raw["_address"].city, birthday=True)
        raw2["_address"] = raw["_address"]
        raw2["address"] = raw["address"] if rng.random() < 0.6 else \
            _other_style(rng, raw["_address"], raw["address"])
        raw.setdefault("phone", b.landline(raw["_address"].city))
        raw2["phone"] = raw["phone"] if rng.random() < 0.6 else b.restyle_landline(raw["phone"])
        y, m, d = raw["_birthday"]
        gap = rng.choice((rng.randint(-5, 5), rng.randint(20, 32), -rng.randint(20, 32)))
        y2 = min(max(y + gap, 1930), 2020)
        m2, d2 = rng.randint(1, 12), rng.randint(1, 28)
        while (m2, d2) in ((m, d), (d, m)):
            m2, d2 = rng.randint(1, 12), rng.randint(1, 28)
        raw2["_birthday"] = (y2, m2, d2)
        raw2.pop("email", None)
    else:
        raise ValueError(kind)
    first, second = b.raw[a], b.raw[c]
    if first.get("email") and first["email"] == second.get("email"):
        second.pop("email")  # one mailbox is one customer: not a near-miss any more
    b.pair(a, c, kind, False)


def _crowded(b: _Builder, n: int) -> None:
    """n companies whose cores start with CROWD_PREFIX, with one-character variants of some
    (the typo anywhere after the prefix, so the pair stays in the block)."""
    variants = max(20, n // 500) if n else 0
    for _ in range(n - variants):
        b.company(prefix=CROWD_PREFIX)
    for _ in range(variants):
        core, word = b.core(CROWD_PREFIX)
        city = b.city()
        a, raw = b.company(core, city, industry=word)
        copy = b.copy(raw)
        new_core = b.variant_core(core, range(len(CROWD_PREFIX), len(core) - len(word)),
                                  False) \
            or b.variant_core(core, range(len(CROWD_PREFIX), len(core)), False)
        copy["name"] = b.company_name(new_core, city)
        b.pair(a, b.add(copy), "crowded_typo", True)


def _stored(raw: dict) -> dict:
    """The stored columns of one record, as a save computes them."""
    values = {k: v for k, v in raw.items() if not k.startswith("_")}
    if raw.get("_birthday"):
        y, m, d = raw["_birthday"]
        values["birthday"] = f"{y}-{m:02d}-{d:02d}"
    return clean_customer_data(values)


def generate(seed: int = 19, n_pairs: int = 40, n_background: int = 2000,
             crowded: int = 0) -> Dataset:
    """n_pairs of every duplicate kind and of every near-miss kind ("crowded_typo" comes
    with `crowded`), n_background unrelated customers (half companies), `crowded` companies
    in one name block. Records get ids 1… in a shuffled order."""
    b = _Builder(seed)
    for _ in range(n_pairs):
        for kind in DUPLICATE_KINDS:
            if kind.startswith("company_"):
                _company_variant(b, kind)
            elif kind.startswith("person_"):
                _person_variant(b, kind)
        for kind in NEAR_MISS_KINDS:
            _near_miss(b, kind)
    for i in range(n_background):
        if i % 2:
            b.company()
        else:
            b.person()
    _crowded(b, crowded)
    order = list(range(len(b.raw)))
    b.rng.shuffle(order)
    ids = {index: n + 1 for n, index in enumerate(order)}
    records = [None] * len(b.raw)
    for index, raw in enumerate(b.raw):
        records[ids[index] - 1] = dict(_stored(raw), id=ids[index])
    data = Dataset(records)
    for i, j, kind, duplicate in b.pairs:
        a, c = sorted((ids[i], ids[j]))
        (data.duplicates if duplicate else data.near_misses).append((a, c, kind))
    return data


if __name__ == "__main__":  # a look at a few pairs of each kind
    import sys

    d = generate(n_pairs=int(sys.argv[1]) if len(sys.argv) > 1 else 2, n_background=10)
    rows = d.by_id()
    show = ("name", "name_core", "city", "address_norm", "mobile_e164", "phone_e164",
            "email_norm", "birth_year", "birth_month", "birth_day")
    for a, c, kind in d.duplicates + d.near_misses:
        print(kind)
        for i in (a, c):
            print("   ", {k: rows[i].get(k) for k in show if rows[i].get(k) is not None})
