"""Duplicate matching (查重): one Fellegi–Sunter scorer and one blocking for the entry check,
the import and the batch scan.

A *record* is a dict of a customer's stored columns (record_of fills the rest). Two records of
the same customer type are compared field by field, each field at a level: companies by the
name's core (edit distance relative to length; its pinyin for homophones), legal form, city,
the address's words and its numbers (house, building, postcode: numbers weigh more than
words), landline and mobile (exact, last 8 digits), e-mail (address, user name) and
industry; persons by surname and given name (Jaro–Winkler; pinyin), birthday (exact, month
and day only, year off by one, day and month swapped, two parts of three), city, address,
numbers, phones and e-mail. A level adds log2(m/u) to the pair's total, where m and u are the
level's probability among true duplicates and among other pairs; a missing field adds 0. A
company and a person are never one customer.

The weights are estimated without labels by EM (em.py) on blocked candidate pairs: the
shipped default_model.json once on FEBRL 1–3 and generated Chinese customers
(scripts/train_matching_defaults.py, provenance in the file), and a deployment's own by
`flask crm dedupe-train` (Matcher.current() uses it). The thresholds are read off the model
(model.choose_thresholds): link where a pair is 99 % likely to be one customer, review where
it is 50 % likely (under the estimated share of duplicates among candidate pairs). A
person's household fields (city, address, house number, landline) together add less than
the link threshold: a family linked by them alone goes to review, not to a link. Blocking:
blocking.py.

    m = Matcher(); m.explain(a, b).text(); m.score(q, candidates); m.link(records)
"""
from app.services.matching.explain import Explained, Part
from app.services.matching.matcher import Matcher
from app.services.matching.records import record_of

__all__ = ["Explained", "Matcher", "Part", "record_of"]
