"""Service desk (客户服务): tickets (工单), their messages, history and attachments; the
category tree; service teams and their agents; routing rules; SLA policies; the work
calendar; the desk's settings.

Times are stored naive UTC like everywhere else. SLA targets are counted in business time
(the work calendar and the working periods of the ticket's team, else the global ones) or
around the clock, as the ticket's SLA policy says; app.services.sla owns that arithmetic.
"""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey, Index,
                        Integer, String, Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow
from app.models.marketing import BigId

TICKET_CHANNELS = {"phone": _l("Phone"), "email": _l("E-mail"), "online": _l("Online"),
                   "wechat": _l("WeChat"), "visit": _l("On-site visit")}
TICKET_PRIORITIES = {"P1": _l("P1 urgent"), "P2": _l("P2 high"), "P3": _l("P3 normal"),
                     "P4": _l("P4 low")}
# 新建 → 已分派 → 处理中 → 待客户确认 → 已解决 → 已关闭 (and reopen).
TICKET_STATUSES = {"new": _l("New"), "assigned": _l("Assigned to an agent"),
                   "in_progress": _l("Being handled"), "waiting": _l("Waiting for the customer"),
                   "resolved": _l("Resolved"), "closed": _l("Closed")}
OPEN_TICKET_STATUSES = ("new", "assigned", "in_progress", "waiting")
# A message is an internal note, a reply to the customer (sent by e-mail through the
# ticket's outbox columns), or a message from the customer (inbound e-mail, or typed in).
MESSAGE_KINDS = {"note": _l("Internal note"), "reply": _l("Reply to the customer"),
                 "inbound": _l("From the customer")}
SLA_CLOCKS = {"business": _l("Business hours"), "24x7": _l("Around the clock")}
TEAM_STRATEGIES = {"round_robin": _l("Round robin"), "least_loaded": _l("Fewest open tickets")}
LOW_SCORE_ACTIONS = {"reopen": _l("Reopen the ticket"), "task": _l("A task for the owner")}


class TicketCategory(Model):
    """A node of the category tree (咨询, 故障, 投诉, 退换货, 建议 and their children)."""

    __tablename__ = "ticket_category"
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    parent_id = Column(Integer, ForeignKey("ticket_category.id", ondelete="RESTRICT"),
                       index=True)
    # Materialised path "/1/4/" (as department.path): "this category and below" is one LIKE.
    path = Column(String(500), nullable=False, default="/", server_default="/", index=True)
    # Tickets in a complaint category (or below one) are told to the customer's owner.
    is_complaint = Column(Boolean, nullable=False, default=False, server_default="0")
    position = Column(Integer, nullable=False, default=100, server_default="100")
    active = Column(Boolean, nullable=False, default=True, server_default="1")

    parent = relationship("TicketCategory", remote_side=[id])

    def __repr__(self) -> str:
        return self.name or ""


class ServiceTeam(Model):
    """A service team (客服组): its agents (service_team_member), its lead and manager (the
    two escalation levels), how tickets are spread among its agents, and optionally its own
    working periods (else the global ones in service_settings)."""

    __tablename__ = "service_team"
    __table_args__ = (
        CheckConstraint("strategy in ('round_robin', 'least_loaded')",
                        name="ck_service_team_strategy"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    lead_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    manager_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    strategy = Column(String(16), nullable=False, default="round_robin",
                      server_default="round_robin")
    last_agent_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    # "09:00-12:00,13:30-18:00" (business-time periods of a working day); NULL: the global.
    work_periods = Column(String(100))
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    created_at = Column(DateTime, nullable=False, default=utcnow)

    lead = relationship("Employee", foreign_keys=[lead_id])
    manager = relationship("Employee", foreign_keys=[manager_id])

    def __repr__(self) -> str:
        return self.name or ""


class ServiceTeamMember(Model):
    """An agent (or a manager) in a team."""

    __tablename__ = "service_team_member"
    __table_args__ = (
        Index("uq_service_team_member", "team_id", "user_id", unique=True),
        Index("ix_service_team_member_user", "user_id", "team_id"),
    )
    id = Column(Integer, primary_key=True)
    team_id = Column(Integer, ForeignKey("service_team.id", ondelete="CASCADE"), nullable=False)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    team = relationship("ServiceTeam")
    user = relationship("Employee")


class TicketRoutingRule(Model):
    """Routing rules: ordered; the first active rule whose conditions all match a ticket
    names its team (empty condition: any). The category matches its subtree."""

    __tablename__ = "ticket_routing_rule"
    __table_args__ = (
        CheckConstraint("priority IS NULL OR priority in ('P1', 'P2', 'P3', 'P4')",
                        name="ck_ticket_routing_rule_priority"),
        CheckConstraint("grade IS NULL OR grade in ('A', 'B', 'C')",
                        name="ck_ticket_routing_rule_grade"),
    )
    id = Column(Integer, primary_key=True)
    position = Column(Integer, nullable=False, default=100, server_default="100", index=True)
    name = Column(String(100), nullable=False, unique=True)
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    category_id = Column(Integer, ForeignKey("ticket_category.id", ondelete="CASCADE"))
    priority = Column(String(2))
    province = Column(String(50))  # the customer's region
    grade = Column(String(1))      # the customer's grade
    team_id = Column(Integer, ForeignKey("service_team.id", ondelete="CASCADE"), nullable=False)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    category = relationship("TicketCategory")
    team = relationship("ServiceTeam")

    def __repr__(self) -> str:
        return self.name or ""


class SlaPolicy(Model):
    """First-response and resolution targets for a priority and / or a customer grade (empty:
    any; the most specific active policy applies, then the lowest position)."""

    __tablename__ = "sla_policy"
    __table_args__ = (
        CheckConstraint("priority IS NULL OR priority in ('P1', 'P2', 'P3', 'P4')",
                        name="ck_sla_policy_priority"),
        CheckConstraint("grade IS NULL OR grade in ('A', 'B', 'C')", name="ck_sla_policy_grade"),
        CheckConstraint("clock in ('business', '24x7')", name="ck_sla_policy_clock"),
        CheckConstraint("first_response_minutes > 0 AND resolution_minutes > 0",
                        name="ck_sla_policy_targets"),
        CheckConstraint("warn_before_minutes >= 0 AND escalate_after_minutes >= 0",
                        name="ck_sla_policy_warn_escalate"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    position = Column(Integer, nullable=False, default=100, server_default="100")
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    priority = Column(String(2))
    grade = Column(String(1))
    first_response_minutes = Column(Integer, nullable=False)
    resolution_minutes = Column(Integer, nullable=False)
    clock = Column(String(8), nullable=False, default="business", server_default="business")
    # A warning this long (in the policy's clock) before a target falls due.
    warn_before_minutes = Column(Integer, nullable=False, default=60, server_default="60")
    # On breach the team lead is told; this long after the breach, the team's manager.
    escalate_after_minutes = Column(Integer, nullable=False, default=120, server_default="120")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return self.name or ""


class WorkCalendarDay(Model):
    """A day that departs from the weekly pattern (Monday to Friday work): a public holiday
    on a weekday (is_workday false) or a make-up working day (调休) at a weekend (true).
    Seeded from `holidays` for China; admins and service managers edit it."""

    __tablename__ = "work_calendar_day"
    __table_args__ = (
        CheckConstraint("source in ('holidays', 'manual')", name="ck_work_calendar_day_source"),
    )
    id = Column(Integer, primary_key=True)
    day = Column(Date, nullable=False, unique=True)
    is_workday = Column(Boolean, nullable=False)
    name = Column(String(100))
    source = Column(String(10), nullable=False, default="manual", server_default="manual")
    updated_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)


class CustomerServiceAgent(Model):
    """A customer's dedicated service agent (专属客服), beside its owner: its tickets go to
    this agent first (app.services.ticket_routing). Not an owner: it moves nothing in
    ownership. Set by hand, or by the grade-A rule (source 'rule')."""

    __tablename__ = "customer_service_agent"
    __table_args__ = (
        CheckConstraint("source in ('manual', 'rule')", name="ck_customer_service_agent_source"),
    )
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"),
                         primary_key=True)
    agent_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                      index=True)
    source = Column(String(8), nullable=False, default="manual", server_default="manual")
    assigned_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    assigned_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")
    agent = relationship("Employee", foreign_keys=[agent_id])


class ServiceSettings(Model):
    """The desk's settings (one row)."""

    __tablename__ = "service_settings"
    __table_args__ = (
        CheckConstraint("low_score_action in ('reopen', 'task')",
                        name="ck_service_settings_low_score_action"),
        CheckConstraint("low_score_threshold between 1 and 4",
                        name="ck_service_settings_low_score_threshold"),
    )
    id = Column(Integer, primary_key=True)
    # Working periods of a working day, business time: "09:00-12:00,13:30-18:00".
    work_periods = Column(String(100), nullable=False, default="09:00-18:00",
                          server_default="09:00-18:00")
    # The survey sent on resolution (its rating question is the score), and what a low
    # score (≤ threshold) does.
    satisfaction_survey_id = Column(Integer, ForeignKey("survey.id", ondelete="SET NULL"))
    low_score_threshold = Column(Integer, nullable=False, default=2, server_default="2")
    low_score_action = Column(String(8), nullable=False, default="reopen",
                              server_default="reopen")
    # Grade-A customers without a dedicated agent get one from this team (NULL: by hand only).
    dedicated_team_id = Column(Integer, ForeignKey("service_team.id", ondelete="SET NULL"))
    # Where tickets go that no routing rule matches (inbound mail of unknown senders too).
    default_team_id = Column(Integer, ForeignKey("service_team.id", ondelete="SET NULL"))
    max_attachment_mb = Column(Integer, nullable=False, default=10, server_default="10")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    satisfaction_survey = relationship("Survey")
    dedicated_team = relationship("ServiceTeam", foreign_keys=[dedicated_team_id])
    default_team = relationship("ServiceTeam", foreign_keys=[default_team_id])


class Ticket(Model):
    __tablename__ = "ticket"
    __table_args__ = (
        CheckConstraint("status in ('new', 'assigned', 'in_progress', 'waiting', 'resolved',"
                        " 'closed')", name="ck_ticket_status"),
        CheckConstraint("priority in ('P1', 'P2', 'P3', 'P4')", name="ck_ticket_priority"),
        CheckConstraint("channel in ('phone', 'email', 'online', 'wechat', 'visit')",
                        name="ck_ticket_channel"),
        CheckConstraint("satisfaction_score IS NULL OR satisfaction_score between 1 and 5",
                        name="ck_ticket_satisfaction_score"),
        CheckConstraint("escalation_level between 0 and 2", name="ck_ticket_escalation_level"),
        Index("ix_ticket_created_id", "created_at", "id"),       # the list's sort key
        Index("ix_ticket_customer_status", "customer_id", "status"),
        Index("ix_ticket_agent_status", "agent_id", "status"),
        Index("ix_ticket_team_status", "team_id", "status"),
        Index("ix_ticket_category_created", "category_id", "created_at"),
        # What the SLA job looks for: open tickets by the next due time.
        Index("ix_ticket_status_response_due", "status", "first_response_due_at"),
        Index("ix_ticket_status_resolution_due", "status", "resolution_due_at"),
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="RESTRICT"))
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="SET NULL"), index=True)
    # Who wrote in when no customer is linked yet (inbound mail of an unknown sender).
    requester_name = Column(String(200))
    requester_email = Column(String(200), index=True)
    channel = Column(String(8), nullable=False)
    category_id = Column(Integer, ForeignKey("ticket_category.id", ondelete="RESTRICT"))
    priority = Column(String(2), nullable=False, default="P3", server_default="P3")
    subject = Column(String(200), nullable=False)
    description = Column(Text)
    status = Column(String(12), nullable=False, default="new", server_default="new")
    team_id = Column(Integer, ForeignKey("service_team.id", ondelete="SET NULL"))
    agent_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)
    assigned_at = Column(DateTime)
    first_response_at = Column(DateTime)
    resolved_at = Column(DateTime)
    closed_at = Column(DateTime)
    reopened_count = Column(Integer, nullable=False, default=0, server_default="0")
    # SLA (app.services.sla): the policy, the two due times, the pause while waiting for the
    # customer (the resolution clock's remaining seconds are kept and the due time moved on
    # resume), the warning and breach marks and the escalation level the job has reached.
    sla_policy_id = Column(Integer, ForeignKey("sla_policy.id", ondelete="SET NULL"))
    first_response_due_at = Column(DateTime)
    resolution_due_at = Column(DateTime)
    sla_paused_at = Column(DateTime)
    resolution_remaining_seconds = Column(Integer)
    response_warned_at = Column(DateTime)
    resolution_warned_at = Column(DateTime)
    response_breached_at = Column(DateTime)
    resolution_breached_at = Column(DateTime)
    escalation_level = Column(Integer, nullable=False, default=0, server_default="0")
    escalated_at = Column(DateTime)
    # Satisfaction (app.services.satisfaction): the score 1-5 and comment from the survey.
    satisfaction_score = Column(Integer)
    satisfaction_comment = Column(Text)
    rated_at = Column(DateTime)
    # The Message-ID of the mail that opened it (inbound mail continues a thread by it).
    mail_thread_id = Column(String(300), unique=True)

    customer = relationship("Customer")
    contact = relationship("Contact")
    category = relationship("TicketCategory")
    team = relationship("ServiceTeam")
    agent = relationship("Employee", foreign_keys=[agent_id])
    created_by = relationship("Employee", foreign_keys=[created_by_id])
    sla_policy = relationship("SlaPolicy")

    @property
    def status_label(self) -> str:
        return str(TICKET_STATUSES.get(self.status, self.status))

    @property
    def priority_label(self) -> str:
        return str(TICKET_PRIORITIES.get(self.priority, self.priority))

    @property
    def channel_label(self) -> str:
        return str(TICKET_CHANNELS.get(self.channel, self.channel))

    def __repr__(self) -> str:
        return self.subject or ""


class TicketMessage(Model):
    """A note, a reply (e-mailed to the customer through the delivery columns, which the
    ticket mail job works like the care outbox) or a customer's message."""

    __tablename__ = "ticket_message"
    __table_args__ = (
        CheckConstraint("kind in ('note', 'reply', 'inbound')", name="ck_ticket_message_kind"),
        CheckConstraint("delivery_status IS NULL OR delivery_status in"
                        " ('pending', 'sending', 'sent', 'failed', 'cancelled')",
                        name="ck_ticket_message_delivery_status"),
        Index("ix_ticket_message_ticket", "ticket_id", "id"),
        Index("ix_ticket_message_due", "delivery_status", "next_attempt_at"),
    )
    id = Column(BigId, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(8), nullable=False)
    body = Column(Text, nullable=False)
    author_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    # Mail: the message's own Message-ID (unique: a redelivered mail is not added twice),
    # the one it answers, the sender or recipient address.
    mail_message_id = Column(String(300), unique=True)
    in_reply_to = Column(String(300))
    address = Column(String(200))
    delivery_status = Column(String(10))
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime)
    last_error = Column(Text)
    sent_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    ticket = relationship("Ticket")
    author = relationship("Employee")


class TicketEvent(Model):
    """The ticket's history: every change (status, assignment, team, category, priority,
    customer link, SLA warnings / breaches / escalations, rating), who and when."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        Index("ix_ticket_event_ticket", "ticket_id", "id"),
        Index("ix_ticket_event_kind_at", "kind", "at"),
    )
    id = Column(BigId, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(24), nullable=False)
    from_value = Column(String(200))
    to_value = Column(String(200))
    note = Column(Text)
    actor_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    at = Column(DateTime, nullable=False, default=utcnow)

    ticket = relationship("Ticket")
    actor = relationship("Employee")


class TicketAttachment(Model):
    """A file on a ticket (or on one of its messages), kept by app.services.ticket_storage
    under the instance folder by storage_key; served only to those who may see the ticket."""

    __tablename__ = "ticket_attachment"
    __table_args__ = (
        Index("ix_ticket_attachment_ticket", "ticket_id", "id"),
    )
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False)
    message_id = Column(BigId, ForeignKey("ticket_message.id", ondelete="SET NULL"))
    filename = Column(String(200), nullable=False)
    content_type = Column(String(100), nullable=False)
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    storage_key = Column(String(200), nullable=False, unique=True)
    uploaded_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)

    ticket = relationship("Ticket")
