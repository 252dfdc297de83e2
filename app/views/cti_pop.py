"""Screen pops (来电弹屏) for the signed-in agent: a Server-Sent Events stream fed by Redis
pub/sub (any web node hears a pop published on another) and the polling fallback that
renders the cards; app/static/guishu/cti.js shows them. GETs only: no CSRF involved."""
from __future__ import annotations

from flask import Response, current_app, jsonify, render_template, request
from flask_appbuilder import BaseView, expose, has_access

from app.api.common import error_response
from app.redis_conn import get_redis
from app.security import RES_CTI_POP
from app.services import cti_pop
from app.services.errors import GuishuError
from app.services.ids import parse_int
from app.views.base import signed_in_user


class CtiPopView(BaseView):
    route_base = "/cti"
    class_permission_name = RES_CTI_POP
    method_permission_name = {"stream": "read", "pops": "read"}
    default_view = "pops"

    @expose("/pops/stream")
    @has_access
    def stream(self):
        """text/event-stream of the user's pops, ended after CTI_SSE_MAX_SECONDS (the
        browser reconnects): a gthread worker's thread is lent, never kept."""
        user_id = signed_in_user().id
        config = current_app.config
        try:
            client = get_redis()
        except Exception:  # noqa: BLE001 - no Redis configured or reachable: poll
            client = None
        events = cti_pop.pop_events(
            client, user_id, float(config.get("CTI_SSE_MAX_SECONDS", 300)),
            float(config.get("CTI_SSE_HEARTBEAT_SECONDS", 15)))
        return Response(events, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @expose("/pops")
    @has_access
    def pops(self):
        """The user's calls ringing or in conversation (last two minutes) after call id
        `since`, as cards: {"pops": [{…fields, "html"}], "last": the newest id}."""
        try:
            since = parse_int(request.args.get("since", "0") or "0", "since")
        except GuishuError as exc:
            return error_response(exc)
        actor = signed_in_user()
        sm = self.appbuilder.sm
        out = []
        for call in cti_pop.recent_pops(actor, since):
            card = cti_pop.card_for(actor, call, sm.has_access)
            data = card.to_dict()
            data["html"] = render_template("guishu/_cti_card.html", card=card)
            for f in data["followups"]:
                f["at"] = f["at"].isoformat() if f["at"] else None
            out.append(data)
        return jsonify(pops=out, last=max([since] + [p["call_id"] for p in out]))
