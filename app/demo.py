"""Demo data for `flask crm init --demo`: a believable Chinese sales organisation.

Seeded, so every run builds the same people and customers (screenshots, docs and bug reports
talk about the same 张伟); idempotent, keyed on the user `rep1`, so running init twice is
harmless. Customer values go through the same cleaners as user input, so the demo never holds
a phone or e-mail the app itself would refuse. Customers are written in bulk, one transaction
per chunk: each customer must commit together with its ownership row (a deferred foreign key
requires it), and 5,000 one-by-one service calls would take minutes.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from faker import Faker
from flask import current_app
from sqlalchemy import func, select, update
from werkzeug.security import generate_password_hash

from app.extensions import appbuilder, db
from app.models import (CareTemplate, Contact, Customer, Deal, Department, Ownership,
                        OwnershipEvent, Pool,
                        PoolMember)
from app.models.customer import utcnow
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP,
                          ROLE_STAFF)
from app.services import audit, care, caps, classification, org, ownership, policies
from app.services.customers import clean_contact_data, clean_customer_data
from app.services.errors import ValidationFailed

SEED = 2026
EMAIL_DOMAIN = "demo.guishu.cn"
REASON = "演示数据"
CHUNK = 1000
TOTAL_CUSTOMERS = 5000
PERSON_SHARE = 0.2
EAST_POOL_NAME = "华东公海"
EAST_POOL_SIZE = 300
HISTORY_DAYS = 120

# Province -> [(city, area code, digits of a local landline number, districts)]; lengths
# checked against libphonenumber (Xiamen, Taiyuan, Hohhot, Nanning have 7-digit numbers).
REGIONS: dict[str, dict[str, list[tuple[str, str, int, tuple[str, ...]]]]] = {
    "华东": {
        "上海市": [("上海市", "021", 8, ("浦东新区", "徐汇区", "静安区", "闵行区", "长宁区"))],
        "江苏省": [("南京市", "025", 8, ("鼓楼区", "建邺区", "江宁区", "玄武区")),
                 ("苏州市", "0512", 8, ("姑苏区", "吴中区", "相城区", "虎丘区")),
                 ("无锡市", "0510", 8, ("梁溪区", "滨湖区", "新吴区"))],
        "浙江省": [("杭州市", "0571", 8, ("西湖区", "滨江区", "余杭区", "上城区")),
                 ("宁波市", "0574", 8, ("鄞州区", "海曙区", "江北区")),
                 ("温州市", "0577", 8, ("鹿城区", "瓯海区", "龙湾区"))],
        "山东省": [("济南市", "0531", 8, ("历下区", "市中区", "槐荫区")),
                 ("青岛市", "0532", 8, ("市南区", "崂山区", "黄岛区"))],
        "安徽省": [("合肥市", "0551", 8, ("蜀山区", "包河区", "庐阳区"))],
        "福建省": [("福州市", "0591", 8, ("鼓楼区", "台江区", "仓山区")),
                 ("厦门市", "0592", 7, ("思明区", "湖里区", "集美区"))],
    },
    "华北": {
        "北京市": [("北京市", "010", 8, ("海淀区", "朝阳区", "东城区", "西城区", "丰台区"))],
        "天津市": [("天津市", "022", 8, ("和平区", "河西区", "南开区", "滨海新区"))],
        "河北省": [("石家庄市", "0311", 8, ("长安区", "桥西区", "裕华区"))],
        "山西省": [("太原市", "0351", 7, ("小店区", "迎泽区", "杏花岭区"))],
        "内蒙古自治区": [("呼和浩特市", "0471", 7, ("新城区", "赛罕区", "回民区"))],
    },
    "华南": {
        "广东省": [("广州市", "020", 8, ("天河区", "越秀区", "海珠区", "番禺区")),
                 ("深圳市", "0755", 8, ("南山区", "福田区", "宝安区", "龙岗区")),
                 ("东莞市", "0769", 8, ("南城街道", "东城街道", "长安镇")),
                 ("佛山市", "0757", 8, ("禅城区", "南海区", "顺德区")),
                 ("中山市", "0760", 8, ("石岐街道", "东区街道", "火炬开发区"))],
        "广西壮族自治区": [("南宁市", "0771", 7, ("青秀区", "西乡塘区", "江南区"))],
        "海南省": [("海口市", "0898", 8, ("龙华区", "美兰区", "秀英区"))],
    },
    "华中西": {
        "湖北省": [("武汉市", "027", 8, ("江汉区", "武昌区", "洪山区"))],
        "湖南省": [("长沙市", "0731", 8, ("岳麓区", "芙蓉区", "天心区"))],
        "河南省": [("郑州市", "0371", 8, ("金水区", "二七区", "中原区"))],
        "四川省": [("成都市", "028", 8, ("武侯区", "锦江区", "青羊区"))],
        "重庆市": [("重庆市", "023", 8, ("渝中区", "江北区", "渝北区"))],
        "陕西省": [("西安市", "029", 8, ("雁塔区", "碑林区", "未央区"))],
    },
}
# Where the default pool's customers come from (the big cities weigh more).
POOL_REGION_WEIGHTS = {"华东": 35, "华北": 25, "华南": 25, "华中西": 15}

INDUSTRIES = {"制造业": 22, "软件和信息技术": 16, "批发零售": 14, "金融": 8, "教育": 8,
              "医疗健康": 8, "建筑": 9, "物流": 8, "能源": 4, "餐饮酒店": 3}
SOURCES = {"官网": 25, "展会": 15, "转介绍": 20, "电话营销": 20, "广告": 10, "线上活动": 6,
           "合作伙伴": 4}
PRODUCT_LINES = {"云服务": 30, "ERP": 22, "CRM": 22, "硬件": 14, "数据分析": 8, "运维服务": 4}
CONTACT_TITLES = ["总经理", "副总经理", "采购经理", "采购专员", "IT 主管", "信息部经理",
                  "财务总监", "行政主管", "技术负责人", "董事长助理", "运营总监", "项目经理"]
MAIL_PREFIXES = ["info", "sales", "service", "contact", "market", "admin", "hr"]
FREE_MAIL = ["qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "139.com"]
DOMAIN_TLDS = [".com", ".cn", ".com.cn", ".net"]
NOTES = ["年底有采购预算", "关注数据安全与私有化部署", "决策链较长，需要拜访分管副总",
         "老客户转介绍，优先跟进", "正在比较三家供应商", "希望先试用一个月",
         "明年一季度招标", "对价格敏感", "需要上门演示", "已发送报价单"]
GRADES = {"A": 20, "B": 45, "C": 35}

# Departments: (name, parent name); managers are set once the users exist.
DEPARTMENTS = [("总经办", None), ("销售中心", None), ("华东大区", "销售中心"),
               ("上海团队", "华东大区"), ("华北大区", "销售中心"), ("华南大区", "销售中心"),
               ("运营中心", None), ("审计部", None)]
DEPARTMENT_MANAGERS = {"总经办": "admin", "销售中心": "manager1", "华东大区": "manager2",
                       "上海团队": "manager2", "华北大区": "manager3", "华南大区": "manager4",
                       "运营中心": "staff1", "审计部": "auditor1"}
DEPARTMENT_REGIONS = {"华东大区": "华东", "上海团队": "华东", "华北大区": "华北", "华南大区": "华南",
                      "销售中心": None}


@dataclass
class UserSpec:
    username: str
    role: str
    department: str
    superior: Optional[str]


def _user_specs() -> list[UserSpec]:
    """Everyone but admin, in creation order (a superior is always created first)."""
    specs = [UserSpec("manager1", ROLE_MANAGER, "销售中心", "admin")]
    specs += [UserSpec(f"manager{i}", ROLE_MANAGER, dept, "manager1")
              for i, dept in ((2, "华东大区"), (3, "华北大区"), (4, "华南大区"))]
    specs += [UserSpec("staff1", ROLE_STAFF, "运营中心", "admin"),
              UserSpec("staff2", ROLE_STAFF, "运营中心", "staff1"),
              UserSpec("staff3", ROLE_STAFF, "运营中心", "staff1"),
              UserSpec("auditor1", ROLE_AUDITOR, "审计部", "admin"),
              # 市场专员: campaigns, segments, tags; customers read-only and masked.
              UserSpec("marketing1", ROLE_MARKETING, "总经办", "admin")]
    for i in range(1, 21):
        if i <= 7:
            dept = "上海团队" if i >= 5 else "华东大区"
        elif i <= 14:
            dept = "华北大区"
        else:
            dept = "华南大区"
        specs.append(UserSpec(f"rep{i}", ROLE_REP, dept, DEPARTMENT_MANAGERS[dept]))
    return specs


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _uniform(rng: random.Random, lo: float, hi: float) -> float:
    """Uniform in [lo, hi]; lo when the range is empty (odd policy values must not crash)."""
    return lo if hi <= lo else rng.uniform(lo, hi)


class _Generator:
    """Customer and contact values: Faker text, real-looking places, cleaned by the app's rules."""

    def __init__(self, fake: Faker, rng: random.Random):
        self.fake, self.rng = fake, rng
        self.names: set[str] = set()
        self.phones: set[str] = set()   # normalised keys already used, customers and contacts
        self.emails: set[str] = set()
        self.domains: set[str] = set()

    # --- pieces -------------------------------------------------------------------------
    def place(self, region: str) -> tuple[str, str, str, int, tuple[str, ...]]:
        province = self.rng.choice(list(REGIONS[region]))
        city, code, digits, districts = self.rng.choice(REGIONS[region][province])
        return province, city, code, digits, districts

    def landline(self, code: str, digits: int) -> str:
        first = self.rng.choice("2345678" if digits == 7 else "5568823467")
        rest = "".join(self.rng.choice("0123456789") for _ in range(digits - 1))
        return f"{code}-{first}{rest}"

    def address(self, city: str, districts: tuple[str, ...]) -> str:
        district = self.rng.choice(districts)
        street = self.fake.street_name()
        number = self.rng.randint(1, 999)
        suffix = ""
        if self.rng.random() < 0.6:
            floor, room = self.rng.randint(2, 28), self.rng.randint(1, 20)
            suffix = f"{self.rng.choice('ABCD')}座{floor}{room:02d}室"
        return f"{city}{district}{street}{number}号{suffix}"

    def domain(self) -> str:
        for _ in range(20):
            word = self.fake.domain_word()
            name = word + self.rng.choice(DOMAIN_TLDS)
            if word.isascii() and word.isalpha() and name not in self.domains:
                self.domains.add(name)
                return name
        name = f"{self.fake.domain_word()}{self.rng.randint(10, 9999)}.com".lower()
        self.domains.add(name)
        return name

    def _fresh(self, values: dict[str, Any]) -> bool:
        """No other demo row shares a phone or e-mail key: dedupe hits should be meaningful."""
        keys = [values.get("phone_e164"), values.get("mobile_e164")]
        if any(k and k in self.phones for k in keys):
            return False
        email = values.get("email_norm")
        return not (email and email in self.emails)

    def _claim(self, values: dict[str, Any]) -> None:
        for k in ("phone_e164", "mobile_e164"):
            if values.get(k):
                self.phones.add(values[k])
        if values.get("email_norm"):
            self.emails.add(values["email_norm"])

    # --- rows ---------------------------------------------------------------------------
    def company(self, region: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng, fake = self.rng, self.fake
        while True:
            province, city, code, digits, districts = self.place(region)
            name = fake.company()
            if rng.random() < 0.6:
                name = city.removesuffix("市") + name
            if name in self.names or name.count("公司") > 1:  # Faker has "…公司" prefixes
                continue
            domain = self.domain()
            phone = self.landline(code, digits)
            if rng.random() < 0.1:
                phone += f" 转 {rng.randint(800, 899)}"
            raw = {
                "name": name, "customer_type": "company", "industry": _pick(rng, INDUSTRIES),
                "province": province, "city": city, "address": self.address(city, districts),
                "phone": phone,
                "mobile": fake.phone_number() if rng.random() < 0.15 else None,
                "email": f"{rng.choice(MAIL_PREFIXES)}@{domain}" if rng.random() < 0.7 else None,
                "source": _pick(rng, SOURCES), "product_line": _pick(rng, PRODUCT_LINES),
                "notes": rng.choice(NOTES) if rng.random() < 0.25 else None,
            }
            try:
                values = clean_customer_data(raw)
            except ValidationFailed:
                continue
            if not self._fresh(values):
                continue
            self.names.add(name)
            self._claim(values)
            titles = rng.sample(CONTACT_TITLES, rng.choices((1, 2, 3), weights=(45, 35, 20))[0])
            contacts = [self.contact(domain, raw["phone"], title, primary=(i == 0))
                        for i, title in enumerate(titles)]
            return values, contacts

    def contact(self, domain: str, company_phone: str, title: str,
                primary: bool) -> dict[str, Any]:
        rng, fake = self.rng, self.fake
        while True:
            user = fake.user_name()
            raw = {
                "name": fake.name(), "title": title,
                "mobile": fake.phone_number() if rng.random() < 0.95 else None,
                "phone": (f"{company_phone.split(' 转 ')[0]} 转 {rng.randint(100, 899)}"
                          if rng.random() < 0.3 else None),
                "email": (f"{user}@{domain}" if rng.random() < 0.6 else
                          f"{user}{rng.randint(1, 999)}@{rng.choice(FREE_MAIL)}"
                          if rng.random() < 0.3 else None),
                "is_primary": primary,
                "birthday": None, "birthday_lunar": False,
            }
            if rng.random() < 0.4:  # some people's birthdays are known, a third of them lunar
                raw["birthday_lunar"] = rng.random() < 0.3
                month = rng.randint(1, 12)
                day = rng.randint(1, 29 if raw["birthday_lunar"] or month == 2 else 30)
                raw["birthday"] = f"{month:02d}-{day:02d}"
            try:
                values = clean_contact_data(raw)
            except ValidationFailed:
                continue
            # Extensions of the company line are shared on purpose; mobiles and mails are not.
            if values.get("mobile_e164") in self.phones or values.get("email_norm") in self.emails:
                continue
            self._claim({"mobile_e164": values.get("mobile_e164"),
                         "email_norm": values.get("email_norm")})
            return values

    def person(self, region: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng, fake = self.rng, self.fake
        while True:
            province, city, code, digits, districts = self.place(region)
            name = fake.name()
            birthday, lunar = None, False
            if rng.random() < 0.75:
                lunar = rng.random() < 0.3
                year = rng.randint(1960, 2002)
                if lunar:
                    # Day <= 29: every lunar month has it, whatever the year.
                    month, day = rng.randint(1, 12), rng.randint(1, 29)
                else:
                    born = dt.date(year, 1, 1) + dt.timedelta(days=rng.randint(0, 364))
                    month, day = born.month, born.day
                birthday = f"{month:02d}-{day:02d}" if rng.random() < 0.15 else \
                    f"{year}-{month:02d}-{day:02d}"
            raw = {
                "name": name, "customer_type": "person", "province": province, "city": city,
                "address": self.address(city, districts) if rng.random() < 0.5 else None,
                "mobile": fake.phone_number(),
                "phone": self.landline(code, digits) if rng.random() < 0.15 else None,
                "email": (f"{fake.user_name()}{rng.randint(1, 99)}@{rng.choice(FREE_MAIL)}"
                          if rng.random() < 0.6 else None),
                "source": _pick(rng, SOURCES), "product_line": _pick(rng, PRODUCT_LINES),
                "birthday": birthday, "birthday_lunar": lunar,
                "notes": rng.choice(NOTES) if rng.random() < 0.15 else None,
            }
            try:
                values = clean_customer_data(raw)
            except ValidationFailed:
                continue
            if not self._fresh(values):
                continue
            self._claim(values)
            return values, []

    def customer(self, region: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self.rng.random() < PERSON_SHARE:
            return self.person(region)
        return self.company(region)


@dataclass
class _Slot:
    """Where one customer goes and the state of its ownership."""

    region: str
    owner_id: Optional[int] = None
    pool_id: Optional[int] = None
    won: bool = False
    locked: bool = False
    grade: Optional[str] = None
    acquired_at: dt.datetime = None
    last_followup_at: Optional[dt.datetime] = None


def _owned_slots(rng: random.Random, now: dt.datetime, owner_id: int, region: Optional[str],
                 n_potential: int, n_won: int, n_locked: int) -> list[_Slot]:
    """One owner's book, shaped so the cap holds and only a few customers are near reclaim.

    Potential customers mostly sit inside the reclaim windows; ~6% are in the warning window
    and ~4% are already due, so the first sweep and the reminders have something to show.
    """
    pol = policies.effective_policy(owner_id)
    no_fu = float(pol["reclaim_no_followup_days"].value)
    no_deal = float(pol["reclaim_no_deal_days"].value)
    warn = float(pol["warn_before_days"].value)
    days = dt.timedelta(days=1)
    regions = list(REGIONS)

    def home() -> str:
        if region and rng.random() < 0.85:
            return region
        return rng.choice(regions)

    slots: list[_Slot] = []
    for i in range(n_potential):
        state = rng.choices(("ok", "warn", "due"), weights=(90, 6, 4))[0]
        locked = i < n_locked
        if locked or state == "ok":
            limit = min(HISTORY_DAYS, no_deal - warn - 1)
            acq = _uniform(rng, 0, limit)
            fresh = min(acq, no_fu - warn - 1)
            fu = None if (acq <= fresh and rng.random() < 0.25) else _uniform(rng, 0, fresh)
        elif state == "warn":
            fu = _uniform(rng, max(0.0, no_fu - warn + 0.2), max(0.0, no_fu - 0.2))
            acq = _uniform(rng, fu, min(HISTORY_DAYS, no_deal - warn - 1))
        else:
            fu = _uniform(rng, no_fu + 1, no_fu + 15)
            acq = _uniform(rng, fu, max(fu, min(HISTORY_DAYS, no_deal + 10)))
        acquired = now - acq * days
        slots.append(_Slot(region=home(), owner_id=owner_id, locked=locked,
                           grade="A" if locked else None, acquired_at=acquired,
                           last_followup_at=None if fu is None else max(acquired, now - fu * days)))
    for _ in range(n_won):
        acq = _uniform(rng, 0, HISTORY_DAYS)
        acquired = now - acq * days
        fu = None if rng.random() < 0.15 else now - _uniform(rng, 0, min(acq, 60)) * days
        slots.append(_Slot(region=home(), owner_id=owner_id, won=True,
                           grade=_pick(rng, GRADES), acquired_at=acquired,
                           last_followup_at=None if fu is None else max(acquired, fu)))
    return slots


def _book_size(owner_id: int, potential: int, won: int, locked: int) -> tuple[int, int, int]:
    """Trim a planned book to the owner's effective caps (customer cap and lock cap)."""
    pol = policies.effective_policy(owner_id)
    cap = int(pol["max_customers"].value)
    count_won = bool(pol["count_won"].value)
    locked = max(0, min(locked, int(pol["max_locked"].value), potential))

    def counted() -> int:  # what caps.counted will see: unlocked, not won (+ won)
        return (potential - locked) + (won if count_won else 0)

    while counted() > cap and potential > locked:
        potential -= 1
    while counted() > cap and won > 0:
        won -= 1
    return potential, won, locked


def _won_on(rng: random.Random, acquired_at: dt.datetime) -> dt.date:
    """When a won customer's deal was won: any day since it was acquired — except that the
    deals of the last 30 days are dated in this month so far (business time, order kept).
    The month's 业绩目标 are set from them, and made on the 1st the demo would otherwise show a
    month of nothing (0 %). No deal moves out of the last 30 days, so what the marketing demo
    picks by "no deal since the campaign" is the same on every day."""
    from app.services.times import local_today

    won = (acquired_at + (utcnow() - acquired_at) * rng.random()).date()
    today = local_today()
    first, recent = today.replace(day=1), today - dt.timedelta(days=30)
    if recent < won < first:  # acquired before the 1st, then, so the month is open to it
        span = (today - first).days
        won = first + dt.timedelta(days=span * (won - recent).days // (first - recent).days)
    return won


def _deal_amount(rng: random.Random, grade: Optional[str]) -> Decimal:
    """A deal amount inside the default grade band (A >= 500k, B >= 100k, C below)."""
    low, high = {"A": (500_000, 1_200_000), "B": (100_000, 480_000)}.get(grade or "C",
                                                                       (5_000, 95_000))
    return Decimal(rng.randrange(low // 100, high // 100) * 100)


def _department(name: str, parent: Optional[Department], actor_id: Optional[int]) -> Department:
    dept = db.session.execute(
        select(Department).where(Department.name == name)).scalar_one_or_none()
    if dept is not None:
        return dept
    return org.create_department(name, parent=parent, actor_id=actor_id)


def _pool_member(pool: Pool, department: Department) -> None:
    exists = db.session.execute(select(PoolMember.id).where(
        PoolMember.pool_id == pool.id, PoolMember.department_id == department.id,
        PoolMember.user_id.is_(None))).first()
    if exists is None:
        db.session.add(PoolMember(pool_id=pool.id, department_id=department.id))


def build_demo(password: str) -> dict:
    """Build the demo organisation and ~5,000 customers; {"created": False} if already there."""
    sm = appbuilder.sm
    if sm.find_user(username="rep1") is not None:
        return {"created": False}
    if not password:
        raise ValueError("demo password must not be empty")

    fake = Faker("zh_CN")
    fake.seed_instance(SEED)
    rng = random.Random(SEED)
    roles = {}
    for name in (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_AUDITOR, ROLE_MARKETING):
        roles[name] = sm.find_role(name)
        if roles[name] is None:
            raise RuntimeError(f"role {name!r} is missing: run `flask crm init` first")
    policies.ensure_global_policy()
    default_pool = ownership.default_pool()
    # One hash for every demo account (they share the password): scrypt costs ~0.1 s each.
    hashed = generate_password_hash(
        password, method=current_app.config.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
        salt_length=current_app.config.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16))
    used_names: set[tuple[str, str]] = set()

    def person_name() -> tuple[str, str]:
        while True:
            last, first = fake.last_name(), fake.first_name()
            if (last, first) not in used_names:
                used_names.add((last, first))
                return last, first

    def make_user(username: str, role: str) -> Any:
        last, first = person_name()
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(username, first, last, f"{username}@{EMAIL_DOMAIN}",
                               roles[role], hashed_password=hashed, commit=False)
            if not user:
                raise RuntimeError(f"could not create demo user {username}")
        # An existing user (e.g. a real admin) keeps its password.
        if not user.phone:
            user.phone = fake.phone_number()
        return user

    # --- organisation -------------------------------------------------------------------
    users = {"admin": make_user("admin", ROLE_ADMIN)}
    db.session.commit()
    admin_id = users["admin"].id
    depts: dict[str, Department] = {}
    for name, parent in DEPARTMENTS:
        depts[name] = _department(name, depts.get(parent), admin_id)
    users["admin"].department_id = depts["总经办"].id
    for spec in _user_specs():
        user = make_user(spec.username, spec.role)
        user.department_id = depts[spec.department].id
        user.superior_id = users[spec.superior].id if spec.superior else None
        users[spec.username] = user
        db.session.flush()
    for dept_name, username in DEPARTMENT_MANAGERS.items():
        depts[dept_name].manager_id = users[username].id

    east_pool = db.session.execute(
        select(Pool).where(Pool.name == EAST_POOL_NAME)).scalar_one_or_none()
    if east_pool is None:
        east_pool = Pool(name=EAST_POOL_NAME, description="华东大区专属公海：华东客户优先在大区内流转")
        db.session.add(east_pool)
        db.session.flush()
    _pool_member(east_pool, depts["华东大区"])
    _pool_member(default_pool, depts["销售中心"])
    audit.record(admin_id, "create", "demo", None,
                 {"users": (None, len(users)), "departments": (None, len(depts))})
    db.session.commit()

    # --- who holds what -----------------------------------------------------------------
    now = utcnow()
    slots: list[_Slot] = []
    for spec in _user_specs():
        if spec.role == ROLE_REP:
            plan = (rng.randint(75, 85), rng.randint(35, 45), rng.randint(0, 5))
        elif spec.role == ROLE_MANAGER:
            plan = (14, 6, rng.randint(0, 2))
        else:
            continue
        uid = users[spec.username].id
        potential, won, locked = _book_size(uid, *plan)
        slots += _owned_slots(rng, now, uid, DEPARTMENT_REGIONS.get(spec.department),
                              potential, won, locked)
    owner_ids = {s.owner_id for s in slots}
    n_pool = max(0, TOTAL_CUSTOMERS - len(slots))
    n_east = min(EAST_POOL_SIZE, n_pool)
    for i in range(n_pool):
        east = i < n_east
        acq = _uniform(rng, 0, HISTORY_DAYS)
        acquired = now - acq * dt.timedelta(days=1)
        fu = (acquired + _uniform(rng, 0, acq) * dt.timedelta(days=1)
              if rng.random() < 0.1 else None)
        slots.append(_Slot(region="华东" if east else _pick(rng, POOL_REGION_WEIGHTS),
                           pool_id=east_pool.id if east else default_pool.id,
                           acquired_at=acquired, last_followup_at=fu))
    # Ids follow creation time, as they would in a real database.
    slots.sort(key=lambda s: s.acquired_at)

    # --- customers, a transaction per chunk ---------------------------------------------
    gen = _Generator(fake, rng)
    n_customers = n_contacts = n_pool_rows = 0
    for start in range(0, len(slots), CHUNK):
        batch: list[tuple[Customer, _Slot]] = []
        for slot in slots[start:start + CHUNK]:
            values, contacts = gen.customer(slot.region)
            actor = slot.owner_id or admin_id
            when = slot.acquired_at
            customer = Customer(**values, created_by_id=actor, created_at=when, updated_at=when)
            customer.contacts = [Contact(**c, created_at=when) for c in contacts]
            customer.ownership = Ownership(
                owner_id=slot.owner_id, pool_id=slot.pool_id, acquired_at=when,
                acquired_how="created", first_owner_id=slot.owner_id,
                last_followup_at=slot.last_followup_at, locked=slot.locked, won=slot.won,
                category="active" if slot.won else "potential", grade=slot.grade,
                # Locked key accounts are graded A by hand; the rest is computed from deals.
                grade_override="A" if slot.locked else None)
            batch.append((customer, slot))
            n_contacts += len(contacts)
            n_pool_rows += slot.pool_id is not None
        db.session.add_all(c for c, _ in batch)
        db.session.flush()  # customer ids for the events
        db.session.add_all(OwnershipEvent(
            customer_id=c.id, kind="created", actor_id=s.owner_id or admin_id,
            to_owner_id=s.owner_id, to_pool_id=s.pool_id, reason=REASON, created_at=s.acquired_at)
            for c, s in batch)
        # A won customer has the deal that won it, sized to the grade it shows.
        db.session.add_all(Deal(
            customer_id=c.id, user_id=s.owner_id, amount=_deal_amount(rng, s.grade),
            won_on=_won_on(rng, s.acquired_at), product_line=c.product_line,
            created_at=s.acquired_at)
            for c, s in batch if s.won)
        db.session.commit()
        n_customers += len(batch)
        db.session.expunge_all()  # keep the identity map small; only ids are used from here

    # Belt and braces: the plan respected every cap; prove it against the database.
    for uid in owner_ids:
        cap = policies.policy_value(uid, "max_customers")
        held = caps.counted(uid, bool(policies.policy_value(uid, "count_won")))
        if held > cap:
            raise RuntimeError(f"demo data put user {uid} over the cap ({held} > {cap})")

    classification.classify()  # categories and grades as the nightly job would set them
    workflows = _demo_workflows()
    # issue 20 §3: how the customers came to their reps (rules, claims, distributions, past
    # holdings that ended in a reclaim) and their follow-ups, for the ownership-effect report.
    from app.demo_ownership import build_ownership_history

    workflows.update(build_ownership_history(now))
    workflows["care_messages"] = _demo_care()
    workflows["duplicate_clusters"] = _demo_duplicates()
    workflows.update(_demo_leads_and_tasks())
    workflows["opportunities"] = _demo_opportunities()
    workflows.update(_demo_capture_form())
    workflows.update(_demo_marketing(workflows.pop("converted_customers")))
    # Targets last: set from what each rep brings in, the campaigns' won deals included.
    workflows["targets"] = _demo_targets()
    workflows["segment_policies"] = _demo_segment_policies(admin_id)
    workflows.update(_demo_survey())
    # issue 17: the service desk (teams, agents, SLA policies, tickets over 60 days).
    from app.demo_service import build_service_demo

    workflows.update(build_service_demo(hashed))
    # issue 18: agent numbers, call queues, a few calls of rep1's.
    from app.demo_cti import build_cti_demo

    workflows.update(build_cti_demo())
    # issue 20 §5: a follow-up rhythm and past holdings for the risk model to learn from, and
    # its first nightly run (the workbench's 流失风险 panel, or why it is not shown).
    from app.demo_risk import build_risk_history
    from app.services import risk

    workflows.update(build_risk_history(now))
    workflows["risk_models_shown"] = sum(bt.shown for bt in risk.train())
    # issue 20 §4: the value re-evaluation's first proposals, as its weekly run files them.
    from app.services import value_review

    workflows["value_proposals"] = sum(
        n for kind, n in value_review.review().items() if kind != "expired")
    # Every customer made: the planned ones, the twins entered for the review page and the
    # ones converted leads became (a demo lead, the campaigns' leads).
    n_customers += DEMO_TWINS + workflows.pop("converted_customers")
    return {"created": True, "users": len(users), "departments": len(depts),
            "customers": n_customers, "in_pool": n_pool_rows, "contacts": n_contacts,
            **workflows}


DEMO_TWINS = 4


def _demo_segment_policies(admin_id: int) -> int:
    """Reclaim rules by segment, entered through the Policies service as an admin would:
    grade-A accounts may go 180 days without a follow-up and a year without a deal, website
    leads only 15 days without a follow-up."""
    from app.models import User
    from app.services import policy_config

    admin = db.session.get(User, admin_id)
    policy_config.create_policy(admin, {"scope": "global", "segment_grade": "A",
                                        "reclaim_no_followup_days": 180,
                                        "reclaim_no_deal_days": 365})
    policy_config.create_policy(admin, {"scope": "global", "segment_record_type": "lead",
                                        "segment_source": "web_form",
                                        "lead_reclaim_no_followup_days": 15})
    return 2


def _demo_twins() -> list[tuple[Customer, str]]:
    """A few companies and the name another office would write for them (legal form and
    region moved: 杭州云帆科技有限公司 -> 云帆科技（杭州）股份有限公司)."""
    rows = db.session.execute(select(Customer).where(
        Customer.customer_type == "company", Customer.name_region.is_not(None),
        Customer.city.is_not(None)).order_by(Customer.id).limit(DEMO_TWINS)).scalars()
    return [(c, f"{c.name_core}（{c.name_region}）股份有限公司") for c in rows]


def _demo_duplicates() -> int:
    """What 查重审核 should show a newcomer: back office entered a few companies again under
    another spelling (confirming the warning, as people do), and the batch scan ran."""
    from app.models import User
    from app.services import customers, dedupe_scan

    staff = db.session.execute(select(User).where(User.username == "staff1")).scalar_one()
    for original, name in _demo_twins():
        customers.create_customer(staff, {"name": name, "city": original.city,
                                          "province": original.province,
                                          "industry": original.industry},
                                  confirm_duplicates=True)
    return dedupe_scan.scan(actor_id=staff.id).clusters


def _demo_care() -> int:
    """The demo sends care e-mail too (`make start` catches it locally): switch the e-mail
    templates on and plan the coming days, as the morning job would."""
    db.session.execute(update(CareTemplate).where(CareTemplate.channel == "email")
                       .values(active=True))
    planned = care.plan()
    return planned.birthdays + planned.holidays


def _demo_workflows() -> dict:
    """What a newcomer should find on the ownership pages: assignment rules, a pool admin,
    and transfer requests waiting for approval (one needing a second approval)."""
    from app.models import AssignmentRule, User
    from app.services import transfers

    # Looked up again: the objects of the build above were expunged chunk by chunk.
    users = {u.username: u for u in db.session.execute(select(User)).scalars()}
    depts = {d.name: d for d in db.session.execute(select(Department)).scalars()}
    east_pool = db.session.execute(select(Pool).where(Pool.name == EAST_POOL_NAME)).scalar_one()

    rules = [
        AssignmentRule(position=10, name="上海客户归上海团队（轮流）", province="上海市",
                       target_type="department", target_department_id=depts["上海团队"].id,
                       strategy="round_robin", target_pool_id=east_pool.id),
        AssignmentRule(position=20, name="北京客户归华北大区（最少客户优先）", province="北京市",
                       target_type="department", target_department_id=depts["华北大区"].id,
                       strategy="least_loaded"),
        AssignmentRule(position=30, name="广东客户归华南大区（平均）", province="广东省",
                       target_type="department", target_department_id=depts["华南大区"].id,
                       strategy="even"),
    ]
    db.session.add_all(rules)
    # rep1, the longest-serving rep of 华东大区, administers 华东公海 (may distribute, export).
    db.session.add(PoolMember(pool_id=east_pool.id, user_id=users["rep1"].id, is_admin=True))
    db.session.commit()

    def first_customers(username: str, n: int) -> list[int]:
        return list(db.session.execute(
            select(Ownership.customer_id).where(Ownership.owner_id == users[username].id,
                                                Ownership.locked.is_(False))
            .order_by(Ownership.customer_id).limit(n)).scalars())

    rep2, rep3 = users["rep2"], users["rep3"]
    transfers.create_transfer(rep2, first_customers("rep2", 2), users["rep3"].id,
                              "客户希望由熟悉制造业的同事对接", "customer_request",
                              "已报价未回复；下周二约了技术交流")
    transfers.create_transfer(rep3, first_customers("rep3", 1), users["rep8"].id,
                              "客户总部迁往北京", "org_change", "合同续签在三月，联系人王总")
    return {"rules": len(rules), "transfers": 2}


# Leads a newcomer finds in 线索 and 线索公海: (company, person, city, source, who enters it).
DEMO_LEADS = [
    ("杭州青禾数字科技有限公司", "周晓明", "杭州", "web_form", "staff1"),
    ("苏州澄湖精密机械有限公司", "钱立新", "苏州", "exhibition", "staff1"),
    ("宁波港湾冷链物流有限公司", "孙静怡", "宁波", "phone", "staff1"),
    ("合肥星火教育咨询有限公司", "李慧敏", "合肥", "advertising", "staff1"),
    ("南京紫峰医疗器械有限公司", "吴国栋", "南京", "campaign", "staff1"),
    ("无锡太湖新材料有限公司", "郑佳琪", "无锡", "referral", "staff1"),
    ("上海浦江云图软件有限公司", "陈子昂", "上海", "web_form", "rep1"),
    ("上海申城文旅发展有限公司", "刘雨桐", "上海", "referral", "rep1"),
    ("嘉兴南湖印染有限公司", "沈建华", "嘉兴", "other", "rep1"),
    ("绍兴越州黄酒贸易有限公司", "许文博", "绍兴", "exhibition", "rep1"),
]


DEMO_LEAD_RULE = "展会线索归华东大区（轮流）"


def _demo_leads_and_tasks() -> dict:
    """Leads in every status, in the lead pool and owned, and a few tasks, all entered
    through the services as users would (the lead pool is open to the whole sales tree)."""
    from app.models import Lead, User
    from app.services import leads, tasks
    from app.services.errors import GuishuError

    users = {u.username: u for u in db.session.execute(select(User)).scalars()}
    sales = db.session.execute(select(Department).where(Department.name == "销售中心")
                               ).scalar_one()
    lead_pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=lead_pool.id, department_id=sales.id))
    # A lead rule: staff1's exhibition lead below goes to a 华东大区 rep, its event naming it.
    from app.models import AssignmentRule
    from app.services import rules

    east = db.session.execute(select(Department).where(Department.name == "华东大区")
                              ).scalar_one()
    lead_rule = AssignmentRule(position=10, name=DEMO_LEAD_RULE, record_type="lead",
                               source="exhibition", target_type="department",
                               target_department_id=east.id, strategy="round_robin")
    rules.validate_rule(lead_rule)
    db.session.add(lead_rule)
    db.session.commit()
    made: dict[str, list[int]] = {}
    for i, (company, person, city, source, who) in enumerate(DEMO_LEADS):
        try:
            lead = leads.create_lead(users[who], {
                "company_name": company, "person_name": person, "city": city,
                "source": source, "mobile": f"1986{i:07d}",
                "notes": "官网留言咨询报价" if source == "web_form" else None},
                confirm_duplicates=True)
        except GuishuError:  # a demo name that happens to match: left out, not forced
            db.session.rollback()
            continue
        made.setdefault(who, []).append(lead.id)
    rep1 = users["rep1"]
    mine = made.get("rep1", [])
    if mine:
        leads.log_lead_followup(rep1, mine[0], {"channel": "call",
                                                "content": "电话沟通，对方下周要方案"})
    if len(mine) > 1:
        leads.mark_invalid(rep1, mine[1], "号码空号，公司已注销")
    converted = 0
    if len(mine) > 2:
        try:
            outcome = leads.convert_lead(rep1, mine[2], into_pool=False,
                                         confirm_duplicates=True)
            converted += outcome.get("outcome") in ("created", "created_in_pool")
        except GuishuError:  # over rep1's customer cap: the lead stays open
            db.session.rollback()
    pooled = made.get("staff1", [])
    if pooled:
        leads.claim_leads(users["rep2"], pooled[:1])
    from app.services.times import local_today

    today = local_today()
    n_tasks = 0
    for owner, subject, days in (("rep1", "给陈总发送方案和报价", 1),
                                 ("rep1", "回访上周签约的客户", -2),
                                 ("rep2", "准备展会名单", 3)):
        tasks.create(users["manager1"], {
            "subject": subject, "owner_id": users[owner].id,
            "due_at": f"{(today + dt.timedelta(days=days)).isoformat()} 10:00"})
        n_tasks += 1
    n_leads = db.session.execute(select(func.count()).select_from(Lead)).scalar_one()
    return {"leads": n_leads, "tasks": n_tasks, "converted_customers": converted}


# The departments whose month target is set on purpose above their parts' sum, so that the
# team view shows its warning (华南大区: 50,000 more than its reps' targets).
DEMO_TARGET_GAP = {"华南大区": Decimal("50000")}


def _demo_targets() -> int:
    """业绩目标 for this month and this quarter: every demo rep and every sales department,
    entered through the service as people would — manager1 (销售中心) sets his reps' and the
    regions' targets, admin sets 销售中心's own (a manager does not set his own
    department's). Each department's target is its parts' sum, except 华南大区's month."""
    from app.models import User
    from app.services import targets

    users = {u.username: u for u in db.session.execute(select(User)).scalars()}
    departments = {d.name: d for d in db.session.execute(select(Department)).scalars()}
    reps = [spec for spec in _user_specs() if spec.role == ROLE_REP]
    made = 0
    for kind, factor in (("month", 1), ("quarter", 2)):
        start = targets.period_containing(kind)
        # Targets a manager would set from what each rep brings in (the demo's deals of the
        # last 30 days fall in this month so far, see _won_on): 达成率 between about 60 % and
        # 110 % for the month, half of that for the quarter — not thousands of per cent.
        actual = {r["id"]: r for r in targets.attainment_rows(
            [users[spec.username].id for spec in reps], [], kind, start)}
        own: dict[str, Decimal] = {}
        new: dict[str, int] = {}
        for spec in reps:
            i = int(spec.username[3:])
            stretch = Decimal((90, 110, 130, 160)[i % 4]) / 100 * factor
            did = actual.get(users[spec.username].id, {})
            amount = max(Decimal(50000), (Decimal(did.get("actual_won") or 0) * stretch
                                          / 10000).quantize(Decimal(1)) * 10000)
            customers = max(5, int(round((did.get("actual_new") or 0) * float(stretch))))
            targets.create_target(users["manager1"], {
                "user_id": users[spec.username].id, "period_kind": kind,
                "period_start": start, "won_amount": amount, "new_customers": customers})
            own[spec.department] = own.get(spec.department, Decimal(0)) + amount
            new[spec.department] = new.get(spec.department, 0) + customers
            made += 1
        # Children before parents: a parent's parts are its members and its sub-departments.
        own["华东大区"] += own["上海团队"]
        new["华东大区"] += new["上海团队"]
        if kind == "month":
            for name, gap in DEMO_TARGET_GAP.items():
                own[name] += gap
        # 销售中心's parts are the regions' targets as set (华南大区's gap included).
        own["销售中心"] = own["华东大区"] + own["华北大区"] + own["华南大区"]
        new["销售中心"] = new["华东大区"] + new["华北大区"] + new["华南大区"]
        for name in ("上海团队", "华东大区", "华北大区", "华南大区", "销售中心"):
            amount = own[name]
            setter = users["admin"] if name == "销售中心" else users["manager1"]
            targets.create_target(setter, {
                "department_id": departments[name].id, "period_kind": kind,
                "period_start": start, "won_amount": amount, "new_customers": new[name]})
            made += 1
    return made


# 商机 a newcomer finds on the kanban: (title, product line, amount, the stage it reaches).
DEMO_OPPORTUNITIES = [
    ("年度软件订阅", "SaaS 订阅", "36000", "初步接洽"),
    ("仓储管理系统升级", "WMS", "128000", "需求确认"),
    ("门店收银一体机", "硬件", "86000", "方案报价"),
    ("集团 ERP 二期", "ERP", "420000", "商务谈判"),
    ("年度维保合同", "服务", "58000", "赢单"),
    ("数据中台试点", "数据服务", "260000", "输单"),
    ("移动办公套件", "SaaS 订阅", "24000", "初步接洽"),
    ("生产排程模块", "MES", "175000", "方案报价"),
]
DEMO_OPPORTUNITY_REPS = ("rep1", "rep2", "rep3", "rep5")


def _demo_opportunities() -> int:
    """Opportunities at every stage (won and lost included) for several reps, on customers
    they own, moved stage by stage through the one service as the kanban does."""
    from app.models import Opportunity, User
    from app.services import opportunities
    from app.services.errors import GuishuError

    stages = {s.name: s for s in opportunities.stages()}
    order = [s.name for s in stages.values() if s.kind == "open"]
    made = 0
    for who in DEMO_OPPORTUNITY_REPS:
        user = db.session.execute(select(User).where(User.username == who)).scalar_one_or_none()
        if user is None:
            continue
        customers = list(db.session.execute(
            select(Ownership.customer_id).where(Ownership.owner_id == user.id,
                                                Ownership.won.is_(False),
                                                Ownership.locked.is_(False))
            .order_by(Ownership.customer_id).limit(len(DEMO_OPPORTUNITIES))).scalars())
        for customer_id, (title, line, amount, target) in zip(customers, DEMO_OPPORTUNITIES):
            try:
                opp = opportunities.create(user, {"customer_id": customer_id, "title": title,
                                                  "product_line": line, "amount": amount})
                for name in order[1:order.index(target) + 1] if target in order else order[1:]:
                    opportunities.change_stage(user, opp.id, stages[name].id)
                if target == "赢单":
                    opportunities.win(user, opp.id)
                elif target == "输单":
                    opportunities.lose(user, opp.id, "客户预算削减，项目暂停")
            except GuishuError:  # a demo customer that cannot take it: left out, not forced
                db.session.rollback()
                continue
            made += 1
    return db.session.execute(select(func.count()).select_from(Opportunity)).scalar_one()


def _demo_marketing(converted_before: int) -> dict:
    """Issue 16's marketing: tags, a segment, two finished campaigns with a full effect table
    and a running one (app.demo_marketing), sign-ups through the capture form above."""
    from app.demo_marketing import build_marketing_demo

    made = build_marketing_demo("官网咨询表单")
    made["converted_customers"] += converted_before
    return made


def _demo_capture_form() -> dict:
    """A public lead capture form (官网咨询) into the default lead pool, and one visitor's
    submission through it, as the public page would send it."""
    from app.models import User
    from app.services import lead_capture, leads

    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    form = lead_capture.create_form(admin, {
        "name": "官网咨询表单", "channel": "web_form", "pool_id": leads.default_lead_pool().id,
        "policy_text": "我们仅将您填写的信息用于联系您、介绍产品与服务，不会提供给第三方。"
                       "您可随时要求查询或删除这些信息。",
        "policy_version": "2026-11", "is_active": True})
    done = lead_capture.submit(form.token, {
        "name": "周敏", "company": "绍兴越秀纺织有限公司", "mobile": "19870000001",
        "email": "zhoumin@example.com", "province": "浙江", "city": "绍兴",
        "notes": "想了解贵公司的报价和交付周期", "consent": "y"}, "127.0.0.1")
    return {"capture_forms": 1, "capture_leads": int(done.outcome == "lead")}


DEMO_SURVEY_ANSWERS = [  # (source, wanted features, rating, suggestion)
    ("展会", ["移动端", "报表"], "5", "希望尽快上线小程序"),
    ("朋友推荐", ["报表"], "4", ""),
    ("网络搜索", ["接口", "报表"], "4", "接口文档可以更详细一些"),
    ("展会", ["移动端"], "3", ""),
    ("朋友推荐", ["报表", "移动端", "接口"], "5", "培训很到位"),
    ("网络搜索", ["移动端"], "2", "导入速度有点慢"),
]


def _demo_survey() -> dict:
    """One open survey (客户满意度调研) with links for a dozen customers, half answered, as
    the public page would send the answers (no delivery: the demo has no mail server)."""
    from app.models import User
    from app.services import surveys

    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    survey = surveys.create_survey(admin, {
        "title": "2026 客户满意度调研", "intro": "感谢您一直以来的支持，耽误您两分钟。",
        "questions": [
            {"kind": "single", "text": "您是通过什么渠道了解我们的？",
             "options": ["展会", "朋友推荐", "网络搜索", "其他"]},
            {"kind": "multiple", "text": "您最看重哪些功能？", "options": ["报表", "移动端", "接口"]},
            {"kind": "rating", "text": "您对我们的整体服务打几分？"},
            {"kind": "text", "text": "还有什么建议？", "required": False}]})
    surveys.set_status(admin, survey.id, "open")
    questions = surveys.questions_of(survey.id)
    customers = db.session.execute(select(Customer.id, Customer.name).order_by(Customer.id)
                                   .limit(2 * len(DEMO_SURVEY_ANSWERS))).all()
    answered = 0
    for i, (customer_id, name) in enumerate(customers):
        invitation = surveys.invite(admin, survey.id, customer_id=customer_id,
                                    greeting_name=name)
        if i % 2 == 0 and answered < len(DEMO_SURVEY_ANSWERS):
            source, wanted, rating, note = DEMO_SURVEY_ANSWERS[answered]
            surveys.answer(invitation.token, {
                f"q{questions[0].id}": [source], f"q{questions[1].id}": wanted,
                f"q{questions[2].id}": [rating], f"q{questions[3].id}": [note]})
            answered += 1
    return {"surveys": 1, "survey_responses": answered}
