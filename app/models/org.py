"""Organisation: a department tree and the users (FAB's ab_user, extended) who work in it."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from flask_appbuilder.security.sqla.models import User as FabUser
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

EMPLOYMENT_ACTIVE = "active"
EMPLOYMENT_DEPARTED = "departed"
EMPLOYMENT_LABELS = {EMPLOYMENT_ACTIVE: _l("Employed"), EMPLOYMENT_DEPARTED: _l("Departed")}


def employment_label(status: str) -> str:
    return str(EMPLOYMENT_LABELS.get(status, status))


class Department(Model):
    __tablename__ = "department"
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    parent_id = Column(Integer, ForeignKey("department.id", ondelete="RESTRICT"), index=True)
    # Materialised path "/1/4/9/" so "department and sub-departments" is one LIKE on an index.
    path = Column(String(500), nullable=False, default="/", index=True)
    manager_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL", use_alter=True,
                                            name="fk_department_manager"), index=True)
    # The call-centre queue (技能组) that rings for this department's customers when their
    # owner cannot take a call; sub-departments without one use their parent's.
    cti_queue = Column(String(64))

    parent = relationship("Department", remote_side=[id], backref="children")
    manager = relationship("Employee", foreign_keys=[manager_id])

    def __repr__(self) -> str:
        return self.name


class Employee(FabUser):
    """FAB's user with the organisation columns Guishu needs.

    Not named User: FAB's own models refer to "User" by name in the same registry.
    """

    __tablename__ = "ab_user"
    department_id = Column(Integer, ForeignKey("department.id", ondelete="SET NULL"), index=True)
    # Reports-to: "own + subordinates" scope follows this chain.
    superior_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    employment_status = Column(String(16), nullable=False, default=EMPLOYMENT_ACTIVE,
                               server_default=EMPLOYMENT_ACTIVE)
    departed_at = Column(DateTime)
    phone = Column(String(40))
    # The user's seat (工号) on the telephony platform, and the status it last reported.
    agent_no = Column(String(32), unique=True, index=True)
    agent_status = Column(String(16))   # available | busy | away | offline, NULL: never said
    agent_status_at = Column(DateTime)

    department = relationship("Department", foreign_keys=[department_id])
    superior = relationship("Employee", remote_side="Employee.id", foreign_keys=[superior_id])

    @property
    def display_name(self) -> str:
        full = f"{self.last_name or ''}{self.first_name or ''}".strip()
        return full or self.username

    def get_full_name(self) -> str:
        # FAB's navbar and profile pages call this: family name first, as everywhere here.
        return self.display_name

    def __repr__(self) -> str:
        return self.display_name


# Everywhere else in Guishu a user is a `User`.
User = Employee
