"""First-run set-up, idempotent: roles, global policy, default pool, first admin."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Pool, User
from app.security import ROLE_ADMIN, ROLES
from app.services import (campaign_sending, care, classification, dedupe, opportunities,
                          policies, satisfaction, service_admin)
from app.services import work_calendar

DEFAULT_POOL_NAME = "默认公海"
DEFAULT_LEAD_POOL_NAME = "默认线索公海"


def initialise() -> dict:
    sm = appbuilder.sm
    sm.create_db()
    policies.ensure_global_policy()
    classification.settings()  # the grading thresholds row, with the defaults
    care.ensure_defaults()  # care settings and the default (mostly inactive) templates
    campaign_sending.settings()  # marketing settings: consent required, 180-day attribution
    dedupe.ensure_rules()  # one dedupe rule per kind, with the defaults
    opportunities.ensure_stages()  # the default pipeline stages
    service_admin.ensure_defaults()  # the service desk's settings row and ticket categories
    satisfaction.ensure_default_survey()  # 服务满意度调查, named by the settings
    if db.session.execute(select(Pool).where(Pool.is_default.is_(True),
                                             Pool.record_type == "customer")).first() is None:
        db.session.add(Pool(name=DEFAULT_POOL_NAME, description="未分配客户的默认公海",
                            is_default=True, record_type="customer"))
    if db.session.execute(select(Pool).where(Pool.is_default.is_(True),
                                             Pool.record_type == "lead")).first() is None:
        db.session.add(Pool(name=DEFAULT_LEAD_POOL_NAME, description="未分配线索的默认线索公海",
                            is_default=True, record_type="lead"))
    db.session.commit()
    # The work calendar of this year and next from `holidays` (idempotent; admins' days kept).
    work_calendar.seed_default_years()
    admin_username = os.environ.get("GUISHU_ADMIN_USER", "admin")
    has_admin = db.session.execute(
        select(User.id).where(User.username == admin_username)).first() is not None
    return {"roles": list(ROLES), "admin_created": not has_admin,
            "admin_username": admin_username}


def create_admin(username: str, password: str) -> User:
    sm = appbuilder.sm
    user = sm.add_user(username, "管理员", "系统", f"{username}@guishu.local",
                       sm.find_role(ROLE_ADMIN), password)
    if not user:
        raise RuntimeError(f"could not create admin user {username}")
    return user


def demo_password_path() -> Path:
    """Where a generated demo password is kept (the launcher prints it from there)."""
    from config import INSTANCE_DIR

    return Path(INSTANCE_DIR) / "demo_password"


def demo_password() -> tuple[str, bool]:
    """GUISHU_DEMO_PASSWORD, else one generated once into instance/demo_password."""
    if os.environ.get("GUISHU_DEMO_PASSWORD"):
        return os.environ["GUISHU_DEMO_PASSWORD"], False
    path = demo_password_path()
    if path.exists():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password)
    path.chmod(0o600)
    return password, True
