"""The normaliser against real-world shapes: phones and mobiles (E.164), e-mail, company names
(region / core / legal form), addresses and person names (folded, and their pinyin), and the
keys kept current on every write of a customer."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from app.models import Customer
from app.services import customers
from app.services.normalize import (CompanyName, InvalidValue, name_pinyin, normalize_address,
                                    normalize_email, normalize_mobile, normalize_person_name,
                                    normalize_phone, split_company_name)

PHONES = [
    ("13800138000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("+86-13800138000", "+8613800138000"),
    ("86-13800138000", "+8613800138000"),
    ("0086 13800138000", "+8613800138000"),
    ("(+86)138-0013-8000", "+8613800138000"),
    ("（+86）13800138000", "+8613800138000"),
    ("１３８００１３８０００", "+8613800138000"),
    ("＋８６ １３８ ００１３ ８０００", "+8613800138000"),
    (" 13800138000 ", "+8613800138000"),
    ("010-62345678", "+861062345678"),
    ("(010)62345678", "+861062345678"),
    ("（010）6234 5678", "+861062345678"),
    ("010 6234 5678", "+861062345678"),
    ("+86 10 6234 5678", "+861062345678"),
    ("0755-8888 6666", "+8675588886666"),
    ("021-62345678 转 801", "+862162345678;ext=801"),
    ("021 6234 5678 分机 801", "+862162345678;ext=801"),
    ("021-62345678 ext. 801", "+862162345678;ext=801"),
    ("021-62345678#801", "+862162345678;ext=801"),
    ("+1 650-253-0000", "+16502530000"),
    ("+852 2123 4567", "+85221234567"),
]


@pytest.mark.parametrize("raw,expected", PHONES)
def test_phone_shapes(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["13800138000", "+86 138 0013 8000", "１３８００１３８０００"])
def test_mobile_shapes(raw):
    assert normalize_mobile(raw) == "+8613800138000"


@pytest.mark.parametrize("raw,message", [
    ("010-62345678", "不是手机号码：010-62345678"),
    ("12345", "无效的电话号码：12345"),
    ("电话号码", "无法识别的电话号码：电话号码"),
])
def test_bad_mobiles_say_why(raw, message):
    with pytest.raises(InvalidValue) as err:
        normalize_mobile(raw)
    assert str(err.value) == message


@pytest.mark.parametrize("raw,expected", [
    (" Zhang.San@QQ.com ", "zhang.san@qq.com"),
    ("ZHANGSAN@163.COM", "zhangsan@163.com"),
    ("ｚｈａｎｇｓａｎ＠ｑｑ．ｃｏｍ", "zhangsan@qq.com"),
    ("Li.Si+crm@Example.COM.CN", "li.si+crm@example.com.cn"),
])
def test_email_shapes(raw, expected):
    assert normalize_email(raw) == expected


COMPANIES = [
    ("华为技术有限公司", (None, "华为技术", "有限公司")),
    ("華為技術有限公司", (None, "华为技术", "有限公司")),
    ("华为技术 有限公司", (None, "华为技术", "有限公司")),
    ("华为技术有限公司　", (None, "华为技术", "有限公司")),
    ("华为终端有限公司", (None, "华为终端", "有限公司")),
    ("北京百度网讯科技有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("北京市百度网讯科技有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("百度网讯科技（北京）有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("百度网讯科技(北京)有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("百度网讯科技【北京】有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("北京 百度 网讯科技 有限公司", ("北京", "百度网讯科技", "有限公司")),
    ("深圳市腾讯计算机系统有限公司", ("深圳", "腾讯计算机系统", "有限公司")),
    ("广东省深圳市腾讯计算机系统有限公司", ("深圳", "腾讯计算机系统", "有限公司")),
    # A country word is not a region (it would stand in for the city): dropped.
    ("阿里巴巴（中国）有限公司", (None, "阿里巴巴", "有限公司")),
    ("翔维（中国）技术有限公司", (None, "翔维技术", "有限公司")),
    ("翔维技术（中国）有限公司", (None, "翔维技术", "有限公司")),
    ("翔維（中國）技術有限公司", (None, "翔维技术", "有限公司")),
    ("翔维（中华）技术有限公司", (None, "翔维技术", "有限公司")),
    ("翔维(中华人民共和国)技术有限公司", (None, "翔维技术", "有限公司")),
    ("Xiangwei (China) Technology Co., Ltd.", (None, "xiangweitechnology", "coltd")),
    ("中国广东省深圳市腾讯计算机系统有限公司", ("深圳", "腾讯计算机系统", "有限公司")),
    ("佛山翔维（中国）技术有限公司", ("佛山", "翔维技术", "有限公司")),
    # ... but only country names: 国际 and a leading 中华 are part of the name.
    ("翔维国际技术有限公司", (None, "翔维国际技术", "有限公司")),
    ("翔维（国际）技术有限公司", (None, "翔维国际技术", "有限公司")),
    ("中华书局有限公司", (None, "中华书局", "有限公司")),
    ("中国银行股份有限公司", (None, "中国银行", "股份有限公司")),
    ("上海浦东发展银行股份有限公司", ("上海", "浦东发展银行", "股份有限公司")),
    ("中国平安保险（集团）股份有限公司", (None, "平安保险", "集团股份有限公司")),
    ("小米科技有限责任公司", (None, "小米科技", "有限责任公司")),
    ("海尔集团公司", (None, "海尔", "集团公司")),
    ("青岛海尔股份有限公司", ("青岛", "海尔", "股份有限公司")),
    ("内蒙古伊利实业集团股份有限公司", ("内蒙古", "伊利实业", "集团股份有限公司")),
    ("重庆长安汽车股份有限公司", ("重庆", "长安汽车", "股份有限公司")),
    ("延边朝鲜族自治州东北亚贸易有限公司", ("延边", "东北亚贸易", "有限公司")),
    ("Huawei Technologies Co., Ltd.", (None, "huaweitechnologies", "coltd")),
    ("HUAWEI TECHNOLOGIES CO.,LTD", (None, "huaweitechnologies", "coltd")),
    ("Ｈｕａｗｅｉ Technologies Co.,Ltd.", (None, "huaweitechnologies", "coltd")),
    ("Acme Inc.", (None, "acme", "inc")),
    # A city name that is part of the name, not a region: kept.
    ("中山大学", (None, "中山大学", None)),
    ("吉林大学", (None, "吉林大学", None)),
    ("中山市小榄镇五金制品厂", ("中山", "小榄镇五金制品厂", None)),
    ("北京", (None, "北京", None)),
    ("上海交通大学", ("上海", "交通大学", None)),
]


@pytest.mark.parametrize("raw,expected", COMPANIES)
def test_company_name_shapes(raw, expected):
    region, core, form = expected
    assert split_company_name(raw) == CompanyName(region=region, core=core,
                                                  legal_form=form or "")


def test_different_companies_keep_different_cores():
    assert split_company_name("华为技术有限公司").core != split_company_name("华为终端有限公司").core


ADDRESSES = [
    ("广东省深圳市南山区科技园路１号３号楼", "深圳南山区科技园路1号3栋"),
    ("深圳市南山区科技园路1号3栋", "深圳南山区科技园路1号3栋"),
    ("深圳 南山区 科技园路 1 号 3 幢", "深圳南山区科技园路1号3栋"),
    ("北京市海淀区上地十街10号", "北京海淀区上地十街10号"),
    ("北京海淀区上地十街１０号", "北京海淀区上地十街10号"),
    ("上海市浦东新区 世纪大道 100 号", "上海浦东新区世纪大道100号"),
    ("江苏省苏州市工业园区星湖街328号", "苏州工业园区星湖街328号"),
    ("蘇州市工業園區星湖街３２８號", "苏州工业园区星湖街328号"),
    ("浙江省杭州市西湖区文三路（近学院路）", "杭州西湖区文三路近学院路"),
    ("中国广东省深圳市南山区科技园路１号３号楼", "深圳南山区科技园路1号3栋"),
    ("中国 北京市海淀区上地十街10号", "北京海淀区上地十街10号"),
]


@pytest.mark.parametrize("raw,expected", ADDRESSES)
def test_address_shapes(raw, expected):
    assert normalize_address(raw) == expected


PEOPLE = [
    ("张三", "张三", "zhangsan"),
    ("张 三", "张三", "zhangsan"),
    (" 張三 ", "张三", "zhangsan"),
    ("ＺＨＡＮＧ San", "zhang san", "zhangsan"),
    ("zhang  san", "zhang san", "zhangsan"),
    ("阿依古丽•买买提", "阿依古丽·买买提", "ayigulimaimaiti"),
    ("阿依古丽・买买提", "阿依古丽·买买提", "ayigulimaimaiti"),
    ("欧阳 娜娜", "欧阳娜娜", "ouyangnana"),
]


@pytest.mark.parametrize("raw,folded,pinyin", PEOPLE)
def test_person_name_shapes(raw, folded, pinyin):
    assert normalize_person_name(raw) == folded
    assert name_pinyin(raw) == pinyin


def test_the_table_has_at_least_sixty_real_world_variants():
    assert len(PHONES) + 3 + 3 + 4 + len(COMPANIES) + len(ADDRESSES) + len(PEOPLE) >= 60


# --- stored and kept current ------------------------------------------------------------------
def test_keys_are_stored_on_create_and_follow_every_edit(db, org):
    c = customers.create_customer(org.rep, {"name": "百度网讯科技（北京）有限公司",
                                            "address": "北京市海淀区上地十街１０号"})
    assert (c.name_core, c.name_region, c.legal_form, c.address_norm, c.name_pinyin,
            c.name_block) == ("百度网讯科技", "北京", "有限公司", "北京海淀区上地十街10号",
                              None, "百度")
    customers.update_customer(org.rep, c.id, {"name": "深圳市腾讯计算机系统有限公司"})
    db.session.expire_all()
    c = db.session.get(Customer, c.id)
    assert (c.name_core, c.name_region, c.address_norm) == ("腾讯计算机系统", "深圳",
                                                            "北京海淀区上地十街10号")
    customers.update_customer(org.rep, c.id, {"customer_type": "person", "name": "張 三"})
    db.session.expire_all()
    c = db.session.get(Customer, c.id)
    assert (c.name_core, c.name_region, c.legal_form, c.name_pinyin) == (
        "张三", None, None, "zhangsan")


def test_rows_of_an_older_normaliser_are_refreshed(db, org):
    db.session.execute(update(Customer).values(name_core=None, name_region=None,
                                               norm_version=1))
    db.session.commit()
    assert customers.refresh_normalised_keys() == 4
    db.session.expire_all()
    assert db.session.get(Customer, org.c_north.id).name_core == "华联商贸"
    assert db.session.get(Customer, org.c_north.id).name_region == "北京"
    assert customers.refresh_normalised_keys() == 0


def test_keys_stored_with_a_country_as_the_region_are_refreshed(db, org):
    c = customers.create_customer(org.rep, {"name": "翔维（中国）技术有限公司", "city": "佛山"})
    # What version 3 stored: 中国 as the region, which the same-city check compares.
    db.session.execute(update(Customer).where(Customer.id == c.id).values(
        name_region="中国", norm_version=3))
    db.session.commit()
    assert customers.refresh_normalised_keys() == 1
    db.session.expire_all()
    c = db.session.get(Customer, c.id)
    assert (c.name_core, c.name_region, c.city) == ("翔维技术", None, "佛山")


def test_the_cli_refreshes_every_stale_row_without_redis(app, db, org):
    """`flask crm refresh-keys` runs the nightly job's loop in-process (no worker, no queue)."""
    db.session.execute(update(Customer).values(name_core=None, norm_version=1))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "refresh-keys"])
    assert result.exit_code == 0 and result.output == "4 customers re-normalised\n"
    db.session.expire_all()
    assert db.session.get(Customer, org.c_north.id).name_core == "华联商贸"
