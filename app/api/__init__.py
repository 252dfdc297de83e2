"""REST API under /api/v1/: load input, call a service, map domain errors to 4xx JSON."""
from __future__ import annotations


def register_apis(appbuilder, csrf) -> None:
    from app.api.campaign_stats import CampaignResponseApi, CampaignStatsApi
    from app.api.campaigns import CampaignApi
    from app.api.customers import CustomerApi
    from app.api.dedupe import DedupeApi
    from app.api.hooks import HooksApi, SmsApi
    from app.api.leads import LeadApi
    from app.api.opportunities import OpportunityApi
    from app.api.ownership import OwnershipApi, PoolApi
    from app.api.policies import PolicyApi
    from app.api.segments import SegmentApi
    from app.api.targets import TargetApi
    from app.api.surveys import SurveyApi
    from app.api.tasks import TaskApi
    from app.api.tickets import TicketApi, TicketMailApi
    from app.api.transfers import TransferApi

    from app.api.openapi import GuishuOpenApi

    for api in (CustomerApi, PoolApi, OwnershipApi, TransferApi, TaskApi, PolicyApi,
                DedupeApi, LeadApi, OpportunityApi, HooksApi, SmsApi, TargetApi, CampaignApi,
                SegmentApi, SurveyApi, GuishuOpenApi):
        appbuilder.add_api(api)
    for api in (CampaignStatsApi, CampaignResponseApi):  # beside the campaigns' CRUD
        appbuilder.add_api(api)
    for api in (TicketApi, TicketMailApi):  # issue 17: the service desk
        appbuilder.add_api(api)
    from app.api.service_calendar import SlaPolicyApi, WorkCalendarApi  # issue 17 H1

    for api in (SlaPolicyApi, WorkCalendarApi):
        appbuilder.add_api(api)
    from app.api.cti_calls import CtiCallApi, CtiRouteApi  # issue 18: routing, call log
    from app.api.cti_dial import CtiDialApi  # issue 18: click-to-call
    from app.api.cti_events import CtiEventsApi  # issue 18: call events in

    for api in (CtiEventsApi, CtiRouteApi, CtiCallApi, CtiDialApi):
        appbuilder.add_api(api)
    from app.api.stats import StatsApi  # issue 20: the charts' data

    appbuilder.add_api(StatsApi)
    from flask import current_app as _app
    from flask_appbuilder.api.manager import SwaggerView

    if _app.config.get("FAB_API_SWAGGER_UI"):
        appbuilder.add_view_no_menu(SwaggerView)
    # CSRFProtect's own check would answer HTML and refuse JWT clients: the API blueprints
    # are exempt from it, and app.api.csrf checks the token of the calls the session signs.
    from flask import current_app

    from app.api.common import register_json_errors
    from app.api.csrf import require_csrf_token_with_the_session

    current_app.before_request(require_csrf_token_with_the_session)
    current_app.before_request(reject_malformed_rison)
    current_app.before_request(require_login_provider)
    register_json_errors(current_app)
    for name, blueprint in current_app.blueprints.items():
        if name in ("CustomerApi", "PoolApi", "OwnershipApi", "TransferApi", "TaskApi",
                    "PolicyApi", "DedupeApi", "LeadApi", "OpportunityApi", "SecurityApi",
                    "HooksApi", "SmsApi", "TargetApi", "CampaignApi", "CampaignStatsApi",
                    "CampaignResponseApi", "SegmentApi", "SurveyApi", "TicketApi", "TicketMailApi"):
            csrf.exempt(blueprint)
        if name in ("SlaPolicyApi", "WorkCalendarApi"):  # issue 17 H1
            csrf.exempt(blueprint)
        # issue 18: call events take an API key and a signature only, like the hooks; the
        # route and the call log are GETs; the dial's session calls are checked by
        # app.api.csrf.
        if name in ("CtiEventsApi", "CtiRouteApi", "CtiCallApi", "CtiDialApi"):
            csrf.exempt(blueprint)
        if name == "StatsApi":  # GETs only: nothing to protect
            csrf.exempt(blueprint)


def reject_malformed_rison():
    """400 for a `q` argument FAB's API would choke on (it answers 500 to unparsable rison
    and passes a negative page straight to OFFSET)."""
    from flask import jsonify, request
    import prison

    from app.api.common import error_response
    from app.services.errors import ValidationFailed, tr
    from app.services.ids import MAX_PK

    if not request.path.startswith("/api/") or "q" not in request.args:
        return None
    try:
        value = prison.loads(request.args["q"])
    except Exception:  # noqa: BLE001 - any parse failure is the client's error
        return jsonify(code="invalid", message=tr("The q parameter is not valid rison")), 400
    if isinstance(value, dict):
        for key in ("page", "page_size"):
            if key in value and isinstance(value[key], int) and value[key] < 0:
                return jsonify(code="invalid",
                               message=tr("%(field)s cannot be negative", field=key)), 400
            if key in value and isinstance(value[key], int) and value[key] > MAX_PK:
                # page × page_size would overflow OFFSET's 64 bits.
                return error_response(ValidationFailed({key: tr(
                    "%(field)s cannot be greater than %(max)s", field=key, max=MAX_PK)}))
    return None


def require_login_provider():
    """400 for an API login without `provider`: FAB's schema lets it be absent and its
    endpoint then fails on the missing key (an unauthenticated 500)."""
    from flask import jsonify, request

    if request.endpoint != "SecurityApi.login" or request.method != "POST":
        return None
    data = request.get_json(silent=True) if request.is_json else None
    if isinstance(data, dict) and not isinstance(data.get("provider"), str):
        from app.services.errors import tr

        message = tr("provider is required (db)")
        return jsonify(code="invalid", message=message, fields={"provider": message}), 400
    return None
