"""/api/v1/stats/: the charts' data (app.services.stats), in the caller's data scope, as JSON
for the charts and as CSV / XLSX downloads of the same table."""
from __future__ import annotations

from flask import Response, request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from marshmallow import fields

from app.api import schemas
from app.api.common import DocumentedApi, maps_domain_errors
from app.security import RES_STATS, current_user
from app.services import exports, stats
from app.services.errors import UNKNOWN_FIELD, ValidationFailed

FILTER_ARGS = ("from", "to", "department")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class StatSeries(schemas.Answer):
    __component_name__ = "StatSeries"

    name = fields.String(required=True)
    data = fields.List(fields.Raw(metadata={"type": "number"}), required=True, metadata={
        "description": "one number per category (amounts in yuan)"})


class StatFilters(schemas.Answer):
    __component_name__ = "StatFilters"

    # "from" is a Python keyword: the field is declared under another name.
    date_from = fields.String(allow_none=True, data_key="from", metadata={
        "description": "YYYY-MM-DD; null: this chart does not run over dates"})
    to = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    department = fields.Integer(allow_none=True, metadata={
        "description": "department id (with its sub-departments); null: not applied"})


class StatChart(schemas.Answer):
    """One chart's data: a value per category in each series."""
    __component_name__ = "StatChart"

    name = fields.String(required=True)
    title = fields.String(required=True, metadata={"description": "in the reader's language"})
    kind = fields.String(required=True, metadata={"description": " | ".join(stats.KINDS)})
    categories = fields.List(fields.String(), required=True)
    series = fields.List(fields.Nested(StatSeries), required=True)
    filters = fields.Nested(StatFilters, required=True, metadata={
        "description": "the filters applied"})
    as_of = fields.String(allow_none=True, metadata={
        "description": "RFC 3339: the aggregates the chart sums were counted up to then "
                       "(app.services.stat_aggregates); null: counted live"})


class StatInfo(schemas.Answer):
    __component_name__ = "StatInfo"

    name = fields.String(required=True)
    title = fields.String(required=True)
    kind = fields.String(required=True)
    dated = fields.Boolean(required=True, metadata={"description": "takes from / to"})
    departmental = fields.Boolean(required=True, metadata={"description": "takes department"})


class StatList(schemas.Answer):
    __component_name__ = "StatList"

    result = fields.List(fields.Nested(StatInfo), required=True)


COMPONENTS = schemas.COMPONENTS + (StatSeries, StatFilters, StatChart, StatInfo, StatList)
_PARAMETERS = """
          parameters:
          - {in: path, name: name, required: true, schema: {type: string},
             description: a chart's name (GET /api/v1/stats/ lists them)}
          - {in: query, name: from, schema: {type: string, format: date},
             description: 'first business day (default: 30 days before to)'}
          - {in: query, name: to, schema: {type: string, format: date},
             description: 'last business day, inclusive (default: today)'}
          - {in: query, name: department, schema: {type: integer, minimum: 1},
             description: that department and its sub-departments, inside the scope}"""


def _chart(name: str) -> stats.Chart:
    unknown = sorted(set(request.args) - set(FILTER_ARGS))
    if unknown:
        raise ValidationFailed({k: str(UNKNOWN_FIELD) for k in unknown})
    return stats.evaluate(current_user(), name, stats.parse_filters(request.args))


def _doc(summary: str, answer: str = "", download: str = "") -> str:
    """The docstring of a chart endpoint (the three share their parameters)."""
    if answer:
        body = f"answer: {answer}"
    else:
        body = (f"responses: {{'200': {{description: the table as a file, content: "
                f"{{'{download}': {{schema: {{type: string, format: binary}}}}}}}}}}")
    return f"""{summary}
        ---
        get:
          summary: {summary}{_PARAMETERS}
          {body}
          errors: [400, 401, 403, 404]
        """


class StatsApi(DocumentedApi):
    route_base = "/api/v1/stats"
    class_permission_name = RES_STATS
    openapi_spec_tag = "Stats"
    openapi_spec_component_schemas = COMPONENTS

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def catalogue(self):
        """The charts the caller may read.
        ---
        get:
          summary: 统计图表 — the charts the caller may read, with the filters each takes
          answer: StatList
          errors: [401, 403]
        """
        return self.response(200, **schemas.dump(StatList, {"result": [
            {"name": s.name, "title": str(s.title), "kind": s.kind, "dated": s.dated,
             "departmental": s.departmental} for s in stats.readable(current_user())]}))

    @expose("/<name>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def chart(self, name: str):
        chart = _chart(name)
        data = chart.to_dict()
        data["filters"] = {"date_from": data["filters"]["from"], "to": data["filters"]["to"],
                           "department": data["filters"]["department"]}
        return self.response(200, **schemas.dump(StatChart, data))

    chart.__doc__ = _doc("A chart's data in the caller's data scope", "StatChart")

    @expose("/<name>/csv", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def csv(self, name: str):
        chart = _chart(name)
        return Response(exports.table_csv(*chart.table()), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={name}.csv"})

    csv.__doc__ = _doc("The chart's table as CSV (UTF-8 with a BOM)", download="text/csv")

    @expose("/<name>/xlsx", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def xlsx(self, name: str):
        chart = _chart(name)
        return Response(exports.table_xlsx(name[:31], *chart.table()), mimetype=XLSX,
                        headers={"Content-Disposition": f"attachment; filename={name}.xlsx"})

    xlsx.__doc__ = _doc("The chart's table as an Excel workbook", download=XLSX)
