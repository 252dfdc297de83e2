"""Data only: columns, constraints and relationships. Business rules live in app/services/."""
from app.models.org import Department, Employee, User  # noqa: F401
from app.models.customer import Contact, Customer, CustomerShare  # noqa: F401
from app.models.ownership import (Ownership, OwnershipEvent, Pool, PoolMember,  # noqa: F401
                                  ReclaimWarning, owner_tally)
from app.models.policy import Policy  # noqa: F401
from app.models.audit import AuditLog  # noqa: F401
from app.models.transfer import (Notification, OpenTransfer, TransferItem,  # noqa: F401
                                 TransferRequest)
from app.models.rule import AssignmentRule  # noqa: F401
from app.models.activity import Deal, FollowUp, GradingSettings  # noqa: F401
from app.models.care import CareMessage, CareSettings, CareTemplate  # noqa: F401
from app.models.dedupe import DedupeRule  # noqa: F401
from app.models.imports import ImportBatch, ImportProblem  # noqa: F401
from app.models.dedupe import (DedupeCluster, DedupeClusterMember,  # noqa: F401
                               DedupeDismissal, DedupeModel)
from app.models.merge import CustomerMerge, CustomerRedirect  # noqa: F401
from app.models.search import (CustomerMatchKey, CustomerSearchGram,  # noqa: F401
                               CustomerSearchText)
from app.models.task import Task  # noqa: F401
from app.models.lead import Lead, LeadEvent, LeadFollowUp, LeadOwnership  # noqa: F401
from app.models.absence import Absence  # noqa: F401
from app.models.api_key import ApiKey  # noqa: F401
from app.models.target import SalesTarget  # noqa: F401
from app.models.opportunity import (Opportunity, OpportunityStage,  # noqa: F401
                                    OpportunityStageChange)
from app.models.capture import CaptureForm, CaptureSubmission  # noqa: F401
from app.models.lead_warning import LeadReclaimWarning  # noqa: F401
from app.models.marketing import (Campaign, CampaignMember, CampaignMessage,  # noqa: F401
                                  CampaignTouch, MarketingOptOut, MarketingSettings,
                                  RecordTag, Segment, Tag)
from app.models.survey import (Survey, SurveyAnswer, SurveyInvitation,  # noqa: F401
                               SurveyQuestion, SurveyResponse)
from app.models.service_desk import (CustomerServiceAgent, ServiceSettings, ServiceTeam,  # noqa: F401
                                     ServiceTeamMember, SlaPolicy, Ticket, TicketAttachment,
                                     TicketCategory, TicketEvent, TicketMessage,
                                     TicketRoutingRule, WorkCalendarDay)
from app.models.cti import CtiCall, CtiEvent  # noqa: F401
from app.models.value_review import ValueProposal  # noqa: F401
from app.models.risk import RiskModel, RiskScore  # noqa: F401  (issue 20 §5, issue 14)
from app.models.stat_aggregate import StatDaily, StatWatermark  # noqa: F401
